// CPU entry points of the max-pool ops and their registration: set-up and checks
// (csrc/common/pool_host.h), the plan (plan.h), then the planned kernel, from the table of the CPU
// capability in use (dispatch.h).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <string>
#include <tuple>

#include "../../common/pool_host.h"
#include "dispatch.h"
#include "plan.h"

namespace atrous {
namespace cpu {
namespace {

// The active capability's kernels for scalar_t.
template <typename scalar_t>
const MaxPoolKernels<scalar_t>& kernels() {
  return active_kMaxPoolKernels().get<scalar_t>();
}

// kIndexScatter: grad_input = the gradients added at their in-plane indices (in float for the half
// types), every plane of (N, C) in either layout. An index past the plane (torch's, of a window
// without taps, that its own backward would write out of bounds with) drops its gradient.
void scatter_by_indices(const PoolParams& p, const at::Tensor& go, const at::Tensor& idx, at::Tensor& gi) {
  const bool nhwc = p.layout == Layout::kNHWC;
  const int64_t N = p.batch, C = p.channels, in = p.in_h * p.in_w, out = p.out_h * p.out_w;
  // Planes along dimension 1 of (N*C, pixels), or of (N, pixels, C).
  auto planes = [&](const at::Tensor& t, int64_t pixels) {
    return nhwc ? t.permute({0, 2, 3, 1}).reshape({N, pixels, C}) : t.reshape({N * C, pixels});
  };
  const auto acc = go.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor sum = at::zeros(nhwc ? at::IntArrayRef{N, in, C} : at::IntArrayRef{N * C, in}, go.options().dtype(acc));
  const at::Tensor at = planes(idx, out);
  const at::Tensor inside = at.ge(0).logical_and_(at.lt(in));
  sum.scatter_add_(1, at.where(inside, 0), planes(go, out).to(acc).where(inside, 0));
  planes(gi, in).copy_(sum);
}

std::tuple<at::Tensor, at::Tensor> max_pool2d_cpu(const at::Tensor& input,
                                                  at::IntArrayRef kernel_size,
                                                  at::IntArrayRef stride, at::IntArrayRef padding,
                                                  at::IntArrayRef dilation, bool ceil_mode,
                                                  bool with_indices) {
  auto s = setup_max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, with_indices);
  if (s.output.numel() == 0) return {s.output, s.indices};
  const PoolPlan plan = plan_max_pool(s.p, input.element_size());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "atrous_max_pool", [&] {
    const auto& k = kernels<scalar_t>();
    const auto run = plan.forward == PoolForward::kNchwRows  ? k.forward_nchw_rows
                     : plan.forward == PoolForward::kGeneric ? k.forward_generic
                                                             : k.forward_nhwc;  // kNhwcChannels, kNhwcTaps
    run(s.p, plan, s.input.const_data_ptr<scalar_t>(), s.output.mutable_data_ptr<scalar_t>(),
        with_indices ? s.indices.mutable_data_ptr<int64_t>() : nullptr);
  });
  return {s.output, s.indices};
}

at::Tensor max_pool2d_backward_cpu(const at::Tensor& grad_output, const at::Tensor& indices,
                                   at::IntArrayRef input_size, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                   at::IntArrayRef dilation, bool ceil_mode) {
  auto s = setup_max_pool_backward(grad_output, indices, input_size, kernel_size, stride, padding,
                                   dilation, ceil_mode);
  if (s.grad_input.numel() == 0) return s.grad_input;
  const PoolPlan plan = plan_max_pool(s.p, grad_output.element_size());
  if (plan.backward == PoolBackward::kIndexScatter) {
    scatter_by_indices(s.p, s.grad_output, s.indices, s.grad_input);
    return s.grad_input;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "atrous_max_pool_bwd", [&] {
    const auto& k = kernels<scalar_t>();
    (plan.backward == PoolBackward::kNhwcGather ? k.backward_nhwc : k.backward_nchw)(
        s.p, plan, s.grad_output.const_data_ptr<scalar_t>(), s.indices.const_data_ptr<int64_t>(),
        s.grad_input.mutable_data_ptr<scalar_t>());
  });
  return s.grad_input;
}

// "forward=<path> backward=<path>" for a pool of `input` (what the two ops above would run).
std::string max_pool2d_cpu_plan(const at::Tensor& input, at::IntArrayRef kernel_size,
                                at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, bool ceil_mode) {
  PoolParams p = make_pool_params(input.sizes(), kernel_size, stride, padding, dilation, ceil_mode);
  p.layout = layout_of(input);
  const PoolPlan plan = plan_max_pool(p, input.element_size());
  return std::string("forward=") + forward_name(plan.forward) +
         " backward=" + backward_name(plan.backward);
}

}  // namespace

TORCH_LIBRARY_IMPL(atrous, CPU, m) {
  m.impl("max_pool2d", &max_pool2d_cpu);
  m.impl("max_pool2d_backward", &max_pool2d_backward_cpu);
  m.impl("_max_pool2d_cpu_plan", &max_pool2d_cpu_plan);
}

}  // namespace cpu
}  // namespace atrous

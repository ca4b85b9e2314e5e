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
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "atrous_max_pool_bwd", [&] {
    const auto& k = kernels<scalar_t>();
    const auto run = plan.backward == PoolBackward::kScatter       ? k.backward_scatter
                     : plan.backward == PoolBackward::kNhwcWindows ? k.backward_nhwc_windows
                                                                   : k.backward_nchw;
    run(
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

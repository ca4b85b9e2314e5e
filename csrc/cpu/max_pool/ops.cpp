// CPU entry points of the max-pool ops and their registration: set-up and checks
// (csrc/common/pool_host.h), the plan (plan.h), then the planned kernel.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <string>
#include <tuple>

#include "../../common/pool_host.h"
#include "kernels.h"
#include "plan.h"

namespace atrous {
namespace cpu {
namespace {

std::tuple<at::Tensor, at::Tensor> max_pool2d_cpu(const at::Tensor& input,
                                                  at::IntArrayRef kernel_size,
                                                  at::IntArrayRef stride, at::IntArrayRef padding,
                                                  at::IntArrayRef dilation, bool ceil_mode,
                                                  bool with_indices) {
  auto s = setup_max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, with_indices);
  if (s.output.numel() == 0) return {s.output, s.indices};
  const PoolPlan plan = plan_max_pool(s.p, input.element_size());
  switch (plan.forward) {
    case PoolForward::kNchwRows:
      max_pool_forward_nchw_rows(s.p, plan, s.input, s.output, s.indices);
      break;
    case PoolForward::kNhwcChannels:
      max_pool_forward_nhwc(s.p, plan, s.input, s.output, s.indices);
      break;
    case PoolForward::kGeneric:
      max_pool_forward_generic(s.p, plan, s.input, s.output, s.indices);
      break;
  }
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
  if (plan.backward == PoolBackward::kNhwcGather) {
    max_pool_backward_nhwc(s.p, plan, s.grad_output, s.indices, s.grad_input);
  } else {
    max_pool_backward_nchw(s.p, plan, s.grad_output, s.indices, s.grad_input);
  }
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

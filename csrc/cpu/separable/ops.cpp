// CPU entry points of the fused separable convolution and their registration: checks and set-up
// (csrc/common/separable_host.h), the plan (plan.h), then the tiles (forward_host.cpp,
// backward_host.cpp).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/library.h>

#include <array>
#include <string>
#include <tuple>

#include "../../common/separable_host.h"
#include "plan.h"
#include "tiles.h"

namespace atrous {
namespace cpu {
namespace {

at::Tensor separable_conv2d_cpu(const at::Tensor& input, const at::Tensor& dw_weight, const at::Tensor& pw_weight,
                                const std::optional<at::Tensor>& dw_bias, const std::optional<at::Tensor>& pw_bias,
                                at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                                c10::string_view activation) {
  // The tiles run ATen ops (GEMMs, activations) on views of tensors that may require grad: below
  // autograd, as this kernel is.
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const SeparableArgs a = setup_separable(input, dw_weight, pw_weight, dw_bias, pw_bias, stride, padding, dilation,
                                          std::string(activation));
  return separable_forward(a, plan_separable(a.p, a.out_channels, input.element_size(), at::get_num_threads()));
}

// (grad_input, grad_dw_weight, grad_dw_bias, grad_pw_weight, grad_pw_bias) for output_mask; a
// gradient not asked for is an empty tensor. Everything is computed in the input's layout.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> separable_conv2d_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& dw_weight, const at::Tensor& pw_weight,
    const std::optional<at::Tensor>& dw_bias, at::IntArrayRef stride, at::IntArrayRef padding,
    at::IntArrayRef dilation, c10::string_view activation, std::array<bool, 5> mask) {
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const SeparableArgs a = setup_separable(input, dw_weight, pw_weight, dw_bias, std::nullopt, stride, padding,
                                          dilation, std::string(activation));
  check_same_device_dtype(input, "input", grad_output, "grad_output");
  const DepthwiseParams& p = a.p;
  const std::array<int64_t, 4> out_shape = {p.batch, a.out_channels, p.out_h, p.out_w};
  TORCH_CHECK_VALUE(grad_output.sizes() == at::IntArrayRef(out_shape), "atrous: grad_output must have shape ",
                    at::IntArrayRef(out_shape), ", got ", grad_output.sizes());
  const auto opts = input.options();
  std::array<at::Tensor, 5> grads;
  if (mask[0]) grads[0] = at::empty(input.sizes(), opts.memory_format(memory_format_of(p.layout)));
  if (mask[1]) grads[1] = at::empty(dw_weight.sizes(), opts);
  if (mask[2]) grads[2] = at::empty({p.out_channels}, opts);
  if (mask[3]) grads[3] = at::empty(pw_weight.sizes(), opts);
  if (mask[4]) grads[4] = at::empty({a.out_channels}, opts);
  const SeparablePlan plan = plan_separable(p, a.out_channels, input.element_size(), at::get_num_threads());
  if (plan.tasks == 0) {
    for (auto& g : grads) {
      if (g.defined()) g.zero_();
    }
  } else if (mask[0] || mask[1] || mask[2] || mask[3] || mask[4]) {
    separable_backward(a, plan, in_layout(grad_output, p.layout), grads);
  }
  // Outputs must not alias: a fresh empty tensor for each gradient not asked for.
  for (auto& g : grads) {
    if (!g.defined()) g = at::empty({0}, opts);
  }
  return {grads[0], grads[1], grads[2], grads[3], grads[4]};
}

std::string separable_conv2d_cpu_plan(const at::Tensor& input, const at::Tensor& dw_weight,
                                      const at::Tensor& pw_weight, at::IntArrayRef stride, at::IntArrayRef padding,
                                      at::IntArrayRef dilation) {
  DepthwiseParams p = make_depthwise_params(input.sizes(), dw_weight.sizes(), stride, padding, dilation);
  p.layout = layout_of(input);
  const SeparablePlan plan = plan_separable(p, pw_weight.size(0), input.element_size(), at::get_num_threads());
  return separable_plan_name(plan, p, input.element_size());
}

}  // namespace

TORCH_LIBRARY_IMPL(atrous, CPU, m) {
  m.impl("separable_conv2d", &separable_conv2d_cpu);
  m.impl("separable_conv2d_backward", &separable_conv2d_backward_cpu);
  m.impl("_separable_conv2d_cpu_plan", &separable_conv2d_cpu_plan);
}

}  // namespace cpu
}  // namespace atrous

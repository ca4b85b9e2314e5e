// CPU entry points of the depthwise ops and their registration: set-up and checks
// (csrc/common/depthwise_host.h), the plan (plan.h), then the planned kernels, from the table of
// the CPU capability in use (dispatch.h).
//
// Every result element is produced by exactly one task in a fixed order (the weight gradient is
// reduced over a fixed partition of the work, then in order), so results do not depend on the
// number of threads, and no atomics are needed. Which gradients are asked for never changes how
// one is computed: each gradient's kernel follows from the shape alone.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <array>
#include <string>
#include <tuple>

#include "../../common/depthwise_host.h"
#include "plan.h"
#include "run.h"

namespace atrous {
namespace cpu {
namespace {

template <typename scalar_t>
const scalar_t* cptr(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<scalar_t>() : nullptr;
}

template <typename scalar_t>
scalar_t* mptr(const at::Tensor& t) {
  return t.defined() ? t.mutable_data_ptr<scalar_t>() : nullptr;
}

at::Tensor depthwise_conv2d_cpu(const at::Tensor& input, const at::Tensor& weight,
                                const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation) {
  auto s = setup_depthwise_forward(input, weight, bias, stride, padding, dilation);
  if (s.output.numel() == 0) return s.output;
  const DwForwardPlan plan = plan_forward(s.p, input.element_size());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "atrous_dw_fwd", [&] {
    run_dw_forward(s.p, plan, cptr<scalar_t>(s.input), cptr<scalar_t>(s.weight), cptr<scalar_t>(s.bias),
                mptr<scalar_t>(s.output));
  });
  return s.output;
}

void grad_input(const DepthwiseBackwardInputSetup& s, const DwBackwardInputPlan& plan) {
  const at::Tensor flipped =
      plan.path == DwBackwardInput::kFlippedForward ? s.weight.flip({2, 3}).contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, s.grad_output.scalar_type(), "atrous_dw_bwd_input", [&] {
    run_dw_backward_input(s.p, plan, cptr<scalar_t>(s.grad_output), cptr<scalar_t>(s.weight),
                          cptr<scalar_t>(flipped), mptr<scalar_t>(s.grad_input));
  });
}

// The weight gradient (when s.grad_weight is defined) and the bias gradient (when grad_bias is):
// one pass over grad_output for both where the kernel takes both.
void grad_params(const DepthwiseBackwardWeightSetup& s, const DwBackwardWeightPlan& plan, const at::Tensor& gw,
                 const at::Tensor& gb) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, s.input.scalar_type(), "atrous_dw_bwd_weight", [&] {
    run_dw_backward_params(s.p, plan, cptr<scalar_t>(s.grad_output), cptr<scalar_t>(s.input), mptr<scalar_t>(gw),
                           mptr<scalar_t>(gb));
  });
}

// (grad_input, grad_weight, grad_bias) for output_mask; a gradient not asked for is an empty
// tensor. grad_input follows grad_output's layout; the parameter gradients read grad_output in the
// input's layout.
std::tuple<at::Tensor, at::Tensor, at::Tensor> depthwise_conv2d_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, std::array<bool, 3> mask) {
  check_float_dtype(input, "input");
  check_same_device_dtype(input, "input", weight, "weight");
  check_same_device_dtype(input, "input", grad_output, "grad_output");
  // Shapes and geometry checked before any kernel runs, whatever the mask.
  check_grad_output_shape(make_depthwise_params(input.sizes(), weight.sizes(), stride, padding, dilation),
                          grad_output);
  // Outputs must not alias: a fresh empty tensor for each gradient not asked for.
  auto none = [&] { return at::empty({0}, input.options()); };
  at::Tensor gi = none(), gw = none(), gb = none();
  DepthwiseBackwardWeightSetup sw;
  DwBackwardWeightPlan wplan;
  if (mask[1] || mask[2]) {
    sw = setup_depthwise_backward_weight(grad_output, input, weight.sizes(), stride, padding, dilation);
    wplan = plan_backward_weight(sw.p, input.element_size());
  }
  DepthwiseBackwardInputSetup si;
  DwBackwardInputPlan iplan;
  if (mask[0]) {
    si = setup_depthwise_backward_input(grad_output, weight, input.sizes(), stride, padding, dilation);
    iplan = plan_backward_input(si.p, input.element_size());
    gi = si.grad_input;
  }
  if (mask[1]) gw = sw.grad_weight;
  if (mask[2]) gb = at::empty({sw.p.out_channels}, input.options());
  const bool empty_sum = (mask[1] || mask[2]) && sw.p.batch * sw.p.out_h * sw.p.out_w == 0;
  if (empty_sum) {
    if (mask[1]) gw.zero_();
    if (mask[2]) gb.zero_();
  }
  const bool need_params = (mask[1] || mask[2]) && !empty_sum;
  // channels_last grad_input by the flipped forward, with the weight gradient: one pass.
  if (mask[0] && mask[1] && need_params && gi.numel() > 0 && wplan.fuse_with_input &&
      si.p.layout == Layout::kNHWC && iplan.path == DwBackwardInput::kFlippedForward) {
    const at::Tensor flipped = si.weight.flip({2, 3}).contiguous();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "atrous_dw_bwd_fused", [&] {
      depthwise_kernels<scalar_t>().backward_input_weight_nhwc(sw.p, iplan.flipped, cptr<scalar_t>(sw.grad_output),
                                                     cptr<scalar_t>(sw.input), cptr<scalar_t>(flipped),
                                                     mptr<scalar_t>(gi), mptr<scalar_t>(gw),
                                                     mask[2] ? mptr<scalar_t>(gb) : nullptr);
    });
    return {gi, gw, gb};
  }
  if (mask[0] && gi.numel() > 0) grad_input(si, iplan);
  if (need_params) grad_params(sw, wplan, mask[1] ? gw : at::Tensor(), mask[2] ? gb : at::Tensor());
  return {gi, gw, gb};
}

// What the ops above would run for these arguments (plan.h: plan_name).
std::string depthwise_conv2d_cpu_plan(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                                      at::IntArrayRef padding, at::IntArrayRef dilation) {
  DepthwiseParams p = make_depthwise_params(input.sizes(), weight.sizes(), stride, padding, dilation);
  p.layout = layout_of(input);
  return plan_name(p, input.element_size());
}

}  // namespace

TORCH_LIBRARY_IMPL(atrous, CPU, m) {
  m.impl("depthwise_conv2d", &depthwise_conv2d_cpu);
  m.impl("depthwise_conv2d_backward", &depthwise_conv2d_backward_cpu);
  m.impl("_depthwise_conv2d_cpu_plan", &depthwise_conv2d_cpu_plan);
}

}  // namespace cpu
}  // namespace atrous

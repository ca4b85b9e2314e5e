// Host-side checks and set-up of the fused separable convolution, shared by every backend: the
// depthwise part is checked as the depthwise op checks it (depthwise_host.h), then the pointwise
// weight and bias and the activation. Everything is checked before any kernel runs.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>

#include "depthwise_host.h"

namespace atrous {

enum class Activation { kNone, kRelu, kRelu6 };

inline Activation parse_activation(const std::string& name) {
  if (name == "none") return Activation::kNone;
  if (name == "relu") return Activation::kRelu;
  if (name == "relu6") return Activation::kRelu6;
  TORCH_CHECK_VALUE(false, "atrous: activation must be 'none', 'relu' or 'relu6', got '", name, "'");
  return Activation::kNone;
}

struct SeparableArgs {
  DepthwiseParams p;         // the depthwise convolution (layout included)
  int64_t out_channels = 0;  // Co, of the pointwise product
  Activation act = Activation::kNone;
  at::Tensor input;          // in p.layout, contiguous in it
  at::Tensor dw_weight;      // (Cm, 1, kH, kW) contiguous
  at::Tensor dw_bias;        // (Cm,) or undefined
  at::Tensor pw_weight;      // (Co, Cm) contiguous
  at::Tensor pw_bias;        // (Co,) or undefined
  bool nhwc() const { return p.layout == Layout::kNHWC; }
};

inline at::Tensor checked_bias(const std::optional<at::Tensor>& bias, const at::Tensor& input, const char* name,
                               int64_t size) {
  if (!bias.has_value() || !bias->defined()) return at::Tensor();
  check_same_device_dtype(input, "input", *bias, name);
  TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == size, "atrous: ", name, " must have shape (", size,
                    ",), got ", bias->sizes());
  return bias->contiguous();
}

inline SeparableArgs setup_separable(const at::Tensor& input, const at::Tensor& dw_weight,
                                     const at::Tensor& pw_weight, const std::optional<at::Tensor>& dw_bias,
                                     const std::optional<at::Tensor>& pw_bias, at::IntArrayRef stride,
                                     at::IntArrayRef padding, at::IntArrayRef dilation,
                                     const std::string& activation) {
  check_float_dtype(input, "input");
  check_same_device_dtype(input, "input", dw_weight, "dw_weight");
  check_same_device_dtype(input, "input", pw_weight, "pw_weight");
  SeparableArgs a;
  a.act = parse_activation(activation);
  a.p = make_depthwise_params(input.sizes(), dw_weight.sizes(), stride, padding, dilation);
  a.p.layout = layout_of(input);
  TORCH_CHECK_VALUE(pw_weight.dim() == 4 && pw_weight.size(0) >= 1 && pw_weight.size(1) == a.p.out_channels &&
                        pw_weight.size(2) == 1 && pw_weight.size(3) == 1,
                    "atrous: pw_weight must have shape (C_out, C*m, 1, 1) with C*m = dw_weight.shape[0] = ",
                    a.p.out_channels, ", got ", pw_weight.sizes());
  a.out_channels = pw_weight.size(0);
  a.input = in_layout(input, a.p.layout);
  a.dw_weight = dw_weight.contiguous();
  a.pw_weight = pw_weight.reshape({a.out_channels, a.p.out_channels}).contiguous();
  a.dw_bias = checked_bias(dw_bias, input, "dw_bias", a.p.out_channels);
  a.pw_bias = checked_bias(pw_bias, input, "pw_bias", a.out_channels);
  return a;
}

}  // namespace atrous

// Host-side argument checks and params set-up for the depthwise ops, shared by the CPU and CUDA
// implementations (and by direct C++ / torch.ops callers, who bypass the Python checks).
#pragma once

#include <ATen/ATen.h>

#include "depthwise_params.h"

namespace atrous {

// The layout rule both the kernels and the fake kernels follow: channels_last when the tensor is
// channels_last-contiguous and not also NCHW-contiguous, else NCHW (other strides are copied to
// NCHW first; the Python wrapper copies strided channels_last views to channels_last instead).
inline Layout layout_of(const at::Tensor& t) {
  if (!t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast)) return Layout::kNHWC;
  return Layout::kNCHW;
}

inline at::MemoryFormat memory_format_of(Layout l) {
  return l == Layout::kNHWC ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

// Returns t in the layout's memory format (a no-op when it already is).
inline at::Tensor in_layout(const at::Tensor& t, Layout l) {
  return t.contiguous(memory_format_of(l));
}

inline void check_geometry(at::IntArrayRef stride, at::IntArrayRef padding,
                           at::IntArrayRef dilation) {
  TORCH_CHECK(stride.size() == 2, "atrous: stride must have 2 elements, got ", stride);
  TORCH_CHECK(padding.size() == 4,
              "atrous: padding must have 4 elements (h_begin, w_begin, h_end, w_end), got ",
              padding);
  TORCH_CHECK(dilation.size() == 2, "atrous: dilation must have 2 elements, got ", dilation);
  const int64_t big = int64_t(1) << 31;
  for (auto s : stride) {
    TORCH_CHECK(s >= 1 && s < big, "atrous: stride must be in [1, 2^31), got ", stride);
  }
  for (auto d : dilation) {
    TORCH_CHECK(d >= 1 && d < big, "atrous: dilation must be in [1, 2^31), got ", dilation);
  }
  for (auto p : padding) {
    TORCH_CHECK(p >= 0 && p < big, "atrous: padding must be in [0, 2^31), got ", padding);
  }
}

inline void check_float_dtype(const at::Tensor& t, const char* name) {
  auto st = t.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
              "atrous: ", name,
              " must be float32, float64, float16 or bfloat16, got ", st);
}

// Fills params for a convolution of an input of `input_sizes` (N, C, H, W) with a weight of
// `weight_sizes` (C*m, 1, kH, kW), checking every constraint the kernels rely on.
inline DepthwiseParams make_depthwise_params(at::IntArrayRef input_sizes,
                                             at::IntArrayRef weight_sizes, at::IntArrayRef stride,
                                             at::IntArrayRef padding, at::IntArrayRef dilation) {
  TORCH_CHECK(input_sizes.size() == 4, "atrous: input must be 4-D (N, C, H, W), got sizes ",
              input_sizes);
  TORCH_CHECK(weight_sizes.size() == 4 && weight_sizes[1] == 1,
              "atrous: weight must be 4-D (C*m, 1, kH, kW), got sizes ", weight_sizes);
  check_geometry(stride, padding, dilation);
  DepthwiseParams p;
  p.batch = input_sizes[0];
  p.channels = input_sizes[1];
  p.in_h = input_sizes[2];
  p.in_w = input_sizes[3];
  p.out_channels = weight_sizes[0];
  p.kernel_h = weight_sizes[2];
  p.kernel_w = weight_sizes[3];
  TORCH_CHECK(p.channels >= 1 && (p.batch == 0 || (p.in_h >= 1 && p.in_w >= 1)),
              "atrous: input must have non-zero channels, and non-zero height and width unless "
              "the batch is empty, got sizes ",
              input_sizes);
  TORCH_CHECK(p.out_channels >= 1 && p.out_channels % p.channels == 0,
              "atrous: weight.shape[0] must be a positive multiple of the input's channels (",
              p.channels, "), got ", p.out_channels);
  TORCH_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1, "atrous: kernel size must be positive, got ",
              weight_sizes);
  p.mult = p.out_channels / p.channels;
  p.stride_h = stride[0];
  p.stride_w = stride[1];
  p.pad_h = padding[0];
  p.pad_w = padding[1];
  p.dil_h = dilation[0];
  p.dil_w = dilation[1];
  p.out_h = conv_out_size(p.in_h, padding[0], padding[2], p.kernel_h, p.stride_h, p.dil_h);
  p.out_w = conv_out_size(p.in_w, padding[1], padding[3], p.kernel_w, p.stride_w, p.dil_w);
  TORCH_CHECK(p.out_h >= 1 && p.out_w >= 1,
              "atrous: the dilated kernel (", (p.kernel_h - 1) * p.dil_h + 1, "x",
              (p.kernel_w - 1) * p.dil_w + 1, ") is larger than the padded input (",
              p.in_h + padding[0] + padding[2], "x", p.in_w + padding[1] + padding[3], ")");
  return p;
}

inline void check_same_device_dtype(const at::Tensor& a, const char* an, const at::Tensor& b,
                                    const char* bn) {
  TORCH_CHECK(a.device() == b.device(), "atrous: ", bn, " must be on the same device as ", an,
              " (", a.device(), "), got ", b.device());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "atrous: ", bn, " must have the same dtype as ",
              an, " (", a.scalar_type(), "), got ", b.scalar_type());
}

// Checks shared by every backend's forward: returns the params and the output (empty, allocated
// in the input's layout).
struct DepthwiseForwardSetup {
  DepthwiseParams p;
  at::Tensor input, weight, bias, output;
};

inline DepthwiseForwardSetup setup_depthwise_forward(const at::Tensor& input,
                                                     const at::Tensor& weight,
                                                     const std::optional<at::Tensor>& bias,
                                                     at::IntArrayRef stride,
                                                     at::IntArrayRef padding,
                                                     at::IntArrayRef dilation) {
  check_float_dtype(input, "input");
  check_same_device_dtype(input, "input", weight, "weight");
  DepthwiseForwardSetup s;
  s.p = make_depthwise_params(input.sizes(), weight.sizes(), stride, padding, dilation);
  s.p.layout = layout_of(input);
  s.input = in_layout(input, s.p.layout);
  s.weight = weight.contiguous();
  if (bias.has_value() && bias->defined()) {
    check_same_device_dtype(input, "input", *bias, "bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == s.p.out_channels,
                "atrous: bias must have shape (", s.p.out_channels, ",), got ", bias->sizes());
    s.bias = bias->contiguous();
  }
  s.output = at::empty({s.p.batch, s.p.out_channels, s.p.out_h, s.p.out_w},
                       input.options().memory_format(memory_format_of(s.p.layout)));
  return s;
}

inline void check_grad_output_shape(const DepthwiseParams& p, const at::Tensor& grad_output) {
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == p.batch &&
                  grad_output.size(1) == p.out_channels && grad_output.size(2) == p.out_h &&
                  grad_output.size(3) == p.out_w,
              "atrous: grad_output must have shape (", p.batch, ", ", p.out_channels, ", ",
              p.out_h, ", ", p.out_w, "), got ", grad_output.sizes());
}

struct DepthwiseBackwardInputSetup {
  DepthwiseParams p;
  at::Tensor grad_output, weight, grad_input;
};

inline DepthwiseBackwardInputSetup setup_depthwise_backward_input(
    const at::Tensor& grad_output, const at::Tensor& weight, at::IntArrayRef input_size,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_float_dtype(grad_output, "grad_output");
  check_same_device_dtype(grad_output, "grad_output", weight, "weight");
  DepthwiseBackwardInputSetup s;
  s.p = make_depthwise_params(input_size, weight.sizes(), stride, padding, dilation);
  check_grad_output_shape(s.p, grad_output);
  s.p.layout = layout_of(grad_output);
  s.grad_output = in_layout(grad_output, s.p.layout);
  s.weight = weight.contiguous();
  s.grad_input = at::empty(input_size, grad_output.options().memory_format(
                                           memory_format_of(s.p.layout)));
  return s;
}

struct DepthwiseBackwardWeightSetup {
  DepthwiseParams p;
  at::Tensor grad_output, input, grad_weight;
};

inline DepthwiseBackwardWeightSetup setup_depthwise_backward_weight(
    const at::Tensor& grad_output, const at::Tensor& input, at::IntArrayRef weight_size,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_float_dtype(input, "input");
  check_same_device_dtype(input, "input", grad_output, "grad_output");
  DepthwiseBackwardWeightSetup s;
  s.p = make_depthwise_params(input.sizes(), weight_size, stride, padding, dilation);
  check_grad_output_shape(s.p, grad_output);
  // Both operands are read in one layout: the input's.
  s.p.layout = layout_of(input);
  s.input = in_layout(input, s.p.layout);
  s.grad_output = in_layout(grad_output, s.p.layout);
  s.grad_weight = at::empty(weight_size, input.options());
  return s;
}

struct DepthwiseBackwardBiasSetup {
  DepthwiseParams p;  // batch, out_channels, out_h, out_w and layout
  at::Tensor grad_output, grad_bias;
};

inline DepthwiseBackwardBiasSetup setup_depthwise_backward_bias(const at::Tensor& grad_output) {
  check_float_dtype(grad_output, "grad_output");
  TORCH_CHECK(grad_output.dim() == 4, "atrous: grad_output must be 4-D, got sizes ",
              grad_output.sizes());
  DepthwiseBackwardBiasSetup s;
  s.p.batch = grad_output.size(0);
  s.p.out_channels = grad_output.size(1);
  s.p.out_h = grad_output.size(2);
  s.p.out_w = grad_output.size(3);
  s.p.layout = layout_of(grad_output);
  s.grad_output = in_layout(grad_output, s.p.layout);
  s.grad_bias = at::empty({s.p.out_channels}, grad_output.options());
  return s;
}

}  // namespace atrous

// Plain description of one depthwise convolution, shared by the CPU kernels, the CUDA host code and
// the CUDA kernels. It holds no torch types so that .cu files can include it without ATen.
//
// Naming: the input has C channels and the output Co = C * mult channels; output channel co reads
// input channel co / mult. Spatial padding may differ at the two ends of an axis ('same' with an
// even kernel pads one more at the end), so the begin pads live here and the output size is given.
#pragma once

#include <cstdint>

#include "macros.h"

namespace atrous {

enum class Layout : int { kNCHW = 0, kNHWC = 1 };

struct DepthwiseParams {
  int64_t batch = 0;
  int64_t channels = 0;      // C (input channels)
  int64_t mult = 1;          // depth multiplier m
  int64_t out_channels = 0;  // C * m
  int64_t in_h = 0, in_w = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;  // padding before the first row / column
  int64_t dil_h = 1, dil_w = 1;
  Layout layout = Layout::kNCHW;
};

// Output extent of one axis with begin/end padding; <= 0 means the padded input is smaller than the
// dilated kernel.
ATROUS_HD int64_t conv_out_size(int64_t in, int64_t pad_begin, int64_t pad_end, int64_t kernel,
                                int64_t stride, int64_t dilation) {
  return (in + pad_begin + pad_end - dilation * (kernel - 1) - 1) / stride + 1;
}

ATROUS_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Floor division for a possibly negative numerator and a positive divisor.
ATROUS_HD int64_t floor_div(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// For a fixed tap at offset `off` (= k * dilation - pad), the output positions o with
// 0 <= o * stride + off < in form the range [lo, hi). Used to hoist all bounds checks out of the
// inner loops.
ATROUS_HD void valid_out_range(int64_t off, int64_t stride, int64_t in, int64_t out, int64_t* lo,
                               int64_t* hi) {
  int64_t l = off >= 0 ? 0 : ceil_div(-off, stride);
  int64_t h = in - off <= 0 ? 0 : ceil_div(in - off, stride);
  if (h > out) h = out;
  if (l > h) l = h;
  *lo = l;
  *hi = h;
}

// With unit stride and one output channel per input channel, grad_input is the forward
// correlation of grad_output with the spatially flipped kernel and the complementary padding
// ((k - 1) * dilation - pad). Fills *t with that forward's parameters and returns true when it
// applies (the complementary padding is not negative).
ATROUS_HD bool flipped_forward_params(const DepthwiseParams& q, DepthwiseParams* t) {
  const int64_t pad_h = (q.kernel_h - 1) * q.dil_h - q.pad_h;
  const int64_t pad_w = (q.kernel_w - 1) * q.dil_w - q.pad_w;
  if (q.stride_h != 1 || q.stride_w != 1 || q.mult != 1 || pad_h < 0 || pad_w < 0) return false;
  *t = q;
  t->in_h = q.out_h;
  t->in_w = q.out_w;
  t->out_h = q.in_h;
  t->out_w = q.in_w;
  t->pad_h = pad_h;
  t->pad_w = pad_w;
  return true;
}

}  // namespace atrous

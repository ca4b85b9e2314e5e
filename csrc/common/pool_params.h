// Plain description of one max-pool, shared by the CPU kernels, the CUDA host code and the CUDA
// kernels (no torch types).
//
// Input (N, C, H, W); output and indices (N, C, oH, oW). Output (oh, ow) reduces the window of
// input positions (oh * sH - pH + kh * dH, ow * sW - pW + kw * dW), 0 <= kh < kH, 0 <= kw < kW,
// that lie inside the input (padding never takes part). Its index is the flat position
// ih * W + iw of the winner in its (n, c) input plane.
//
// The winner is torch's: the window is scanned in row-major order (kh, then kw) from a running
// maximum of -inf whose index starts at the first position inside the input, and a tap replaces
// it when it is greater, or NaN. So ties go to the first, the last NaN wins, and an all -inf
// window gives its first position.
//
// Backward (gather form): each input element sums, in increasing output position (the order of
// torch's sequential scatter-add), the gradients of the windows that contain it and whose index
// is its position; one write per element, no zero-fill, no atomics. An index outside its own
// window (never true of the forward's indices) contributes to no element.
#pragma once

#include <cstdint>

#include "depthwise_params.h"  // Layout, ceil_div, floor_div
#include "macros.h"

namespace atrous {

struct PoolParams {
  int64_t batch = 0, channels = 0;
  int64_t in_h = 0, in_w = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;
  Layout layout = Layout::kNCHW;
  bool with_indices = true;  // write the indices (forward)
};

// Output extent of one axis, as torch's pooling_output_shape computes it: floor or ceil of the
// window count, and with ceil_mode no window that starts in the end padding.
ATROUS_HD int64_t pool_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                                int64_t dilation, bool ceil_mode) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = floor_div(span, stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// Taps [*lo, *hi) of the window starting at `start` (= o * stride - pad) that lie inside [0, in).
// (No division for dilation 1: a 64-bit division costs dozens of cycles, and kernels call this
// per output element.)
ATROUS_HD void pool_taps(int64_t start, int64_t kernel, int64_t dilation, int64_t in, int64_t* lo,
                         int64_t* hi) {
  int64_t l, h;
  if (dilation == 1) {
    l = start >= 0 ? 0 : -start;
    h = in - start;
  } else {
    l = start >= 0 ? 0 : ceil_div(-start, dilation);
    h = start >= in ? 0 : ceil_div(in - start, dilation);
  }
  if (h < 0) h = 0;
  if (h > kernel) h = kernel;
  if (l > h) l = h;
  *lo = l;
  *hi = h;
}

// Whether windows overlap along an axis (an input element can lie in two windows).
ATROUS_HD bool pool_overlaps(int64_t kernel, int64_t stride, int64_t dilation) {
  return stride < dilation * (kernel - 1) + 1;
}

// The windows along one axis that contain input position i, in increasing order: fills o[] (at
// most `kernel` entries) and returns their count. Window w contains i when
// i = w * stride - pad + k * dilation for some tap 0 <= k < kernel.
ATROUS_HD int pool_windows_of(int64_t i, int64_t kernel, int64_t stride, int64_t pad,
                              int64_t dilation, int64_t n_windows, int64_t* o) {
  int count = 0;
  for (int64_t k = kernel - 1; k >= 0; --k) {  // w grows as k falls
    const int64_t t = i + pad - k * dilation;
    if (t < 0 || t % stride != 0) continue;
    const int64_t w = t / stride;
    if (w < n_windows) o[count++] = w;
  }
  return count;
}

}  // namespace atrous

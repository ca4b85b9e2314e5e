// Plain description of one max-unpool, shared by the CPU kernels, the CUDA host code and the CUDA
// kernels (no torch types).
//
// Input (N, C, H, W) values with indices of the same shape; each index is the flat position
// r * oW + q of its value in the (oH, oW) output plane of the same (n, c).
//
// Gather form: when windows do not overlap (stride >= kernel on both axes, padding below both) and
// the output is at least the default size, output rows split into disjoint "regions", one per
// window row h: [h*s - p, (h+1)*s - p), the first starting at 0 and the last running to the
// output's end; window (h, w) lies inside region (h, w), and likewise for columns.
//  - CUDA: a thread per output element reads the value and index of the window whose region holds
//    it and writes the element once: the value where the position equals the index, zero
//    elsewhere. Exact while every index lies in its own window (always true of max-pool's indices);
//    the first thread of each region checks that, and an index in range but outside its window
//    sends the op to the scatter form.
//  - CPU, channels_last: as on CUDA, each output element written once by a compare and select over
//    the channels; the matches are counted to check every index lies in its own region.
//  - CPU, NCHW: a task zeroes the output rows of a block of region rows, then writes each of its
//    values at its index in the plane's row-major order. Exact while every index lands in its own
//    task's rows (so no other task writes there, and duplicates resolve in order).
//  In every case an index elsewhere, in range, sends the op to the scatter form.
//
// Scatter form: zero the output, then write every value at its index; where several values of a
// plane share an index, the one latest in the plane's row-major order (h * W + w) wins.
#pragma once

#include <cstdint>

#include "depthwise_params.h"  // Layout, ceil_div, floor_div
#include "macros.h"

namespace atrous {

struct UnpoolParams {
  int64_t batch = 0, channels = 0;
  int64_t in_h = 0, in_w = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  Layout layout = Layout::kNCHW;
  bool gather = false;  // the gather form applies (see above)
};

// Default output extent of one axis, as F.max_unpool2d computes it.
ATROUS_HD int64_t unpool_default_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  return (in - 1) * stride + kernel - 2 * pad;
}

// Region [*lo, *hi) of output positions along one axis written by window `i` in the gather form.
ATROUS_HD void unpool_region(int64_t i, int64_t n_windows, int64_t stride, int64_t pad, int64_t out,
                             int64_t* lo, int64_t* hi) {
  int64_t l = i == 0 ? 0 : i * stride - pad;
  int64_t h = i == n_windows - 1 ? out : (i + 1) * stride - pad;
  l = l < 0 ? 0 : (l > out ? out : l);
  h = h < l ? l : (h > out ? out : h);
  *lo = l;
  *hi = h;
}

// Whether output position (r, q) lies inside window (h, w).
ATROUS_HD bool unpool_in_window(int64_t r, int64_t q, int64_t h, int64_t w, const UnpoolParams& p) {
  const int64_t r0 = h * p.stride_h - p.pad_h, q0 = w * p.stride_w - p.pad_w;
  return r >= r0 && r < r0 + p.kernel_h && q >= q0 && q < q0 + p.kernel_w;
}

}  // namespace atrous

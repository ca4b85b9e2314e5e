// The scalar window scan every max-pool kernel falls back on (borders, narrow rows, the generic
// path), and the valid taps of a window: torch's rule of csrc/common/pool_params.h in one place.
#pragma once

#include "../kernel_namespace.h"

#include <cstdint>
#include <limits>

#include "../../common/pool_params.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

// The taps of output (oh, ow) that lie inside the input: rows [kh0, kh1), columns [kw0, kw1),
// and the window's first input row and column (tap (0, 0), possibly in the padding).
struct WindowTaps {
  int64_t kh0, kh1, kw0, kw1;
  int64_t h_start, w_start;

  WindowTaps(const PoolParams& p, int64_t oh, int64_t ow) {
    h_start = oh * p.stride_h - p.pad_h;
    w_start = ow * p.stride_w - p.pad_w;
    pool_taps(h_start, p.kernel_h, p.dil_h, p.in_h, &kh0, &kh1);
    pool_taps(w_start, p.kernel_w, p.dil_w, p.in_w, &kw0, &kw1);
  }
  int64_t first_index(const PoolParams& p) const {
    return (h_start + kh0 * p.dil_h) * p.in_w + (w_start + kw0 * p.dil_w);
  }
};

// Scans one window of the plane at `plane` (row_step and col_step elements between neighbouring
// rows and columns): torch's running maximum, from -inf with the first inside position as index,
// replaced by a greater value or a NaN.
template <typename acc_t, typename scalar_t>
inline void scan_window(const PoolParams& p, const WindowTaps& t, const scalar_t* plane,
                        int64_t row_step, int64_t col_step, acc_t* best, int64_t* best_index) {
  acc_t m = -std::numeric_limits<acc_t>::infinity();
  int64_t at = t.first_index(p);
  for (int64_t kh = t.kh0; kh < t.kh1; ++kh) {
    const int64_t ih = t.h_start + kh * p.dil_h;
    for (int64_t kw = t.kw0; kw < t.kw1; ++kw) {
      const int64_t iw = t.w_start + kw * p.dil_w;
      const acc_t v = static_cast<acc_t>(plane[ih * row_step + iw * col_step]);
      if (v > m || v != v) {
        m = v;
        at = ih * p.in_w + iw;
      }
    }
  }
  *best = m;
  *best_index = at;
}

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

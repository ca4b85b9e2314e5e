// Helpers shared by the CPU depthwise kernels of both layouts: task splits, weight conversion,
// the kernel-width dispatch and the bias gradient's summation order.
#pragma once

#include "../kernel_namespace.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../common/depthwise_params.h"
#include "../simd.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

// Enough tasks for load balance over any thread count, still a fixed function of the shape.
inline int64_t split_rows(int64_t units, int64_t rows) {
  const int64_t want = 64;
  if (units >= want) return 1;
  return std::min<int64_t>(rows, ceil_div(want, std::max<int64_t>(units, 1)));
}

template <typename scalar_t, typename acc_t>
Buffer<acc_t> to_acc(const scalar_t* src, int64_t n) {
  Buffer<acc_t> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<acc_t>(src[i]);
  return out;
}

// The weight [Co][taps] (or, with taps = 1, the bias) as [Co / L blocks][taps][L] in acc_t for the
// kernels with L channels in the lanes, lanes past Co zero; all zeros for a null pointer (no bias).
template <typename acc_t, int L, typename scalar_t>
Buffer<acc_t> blocked_weight(const scalar_t* weight, int64_t Co, int64_t taps) {
  Buffer<acc_t> w(ceil_div(Co, L) * taps * L, acc_t(0));
  if (weight)
    for (int64_t co = 0; co < Co; ++co)
      for (int64_t t = 0; t < taps; ++t) w[((co / L) * taps + t) * L + co % L] = static_cast<acc_t>(weight[co * taps + t]);
  return w;
}

// The weight [Co][taps] as acc_t, transposed to [taps][Co] for the channels_last kernels.
template <typename acc_t, typename scalar_t>
Buffer<acc_t> transposed_weight(const scalar_t* weight, int64_t Co, int64_t taps) {
  Buffer<acc_t> wt(taps * Co);
  for (int64_t co = 0; co < Co; ++co)
    for (int64_t t = 0; t < taps; ++t) wt[t * Co + co] = static_cast<acc_t>(weight[co * taps + t]);
  return wt;
}


// Calls f(std::integral_constant<int, KW>): KW the kernel width when it is 3, 5 or 7, else 0 (a
// width known only at run time).
template <typename F>
inline void with_kernel_width(int64_t kW, F&& f) {
  if (kW == 3) return f(std::integral_constant<int, 3>{});
  if (kW == 5) return f(std::integral_constant<int, 5>{});
  if (kW == 7) return f(std::integral_constant<int, 7>{});
  f(std::integral_constant<int, 0>{});
}

// a[k] += w[kw] * row[offset[kw] + k * L] summed over the kW taps, for K vectors (KW: kW when

// The bias gradient (each channel's sum of grad_output) is summed in one order whatever the layout
// and whichever op computes it (the bias op, or the weight op with it), so that it is the same bit
// for bit whichever other gradients are asked for. The rows r = n * out_h + oh go in groups of
// bias_group_rows(rows, C) consecutive rows; within a group, lane j of L (the vector width) sums,
// row after row, each row's values j, j + L, j + 2L, ...; a group's sum is its lanes added in
// order from lane 0, and the total is the groups' sums added in order.
inline int64_t bias_group_rows(int64_t rows, int64_t channels) {
  return std::max<int64_t>(4, ceil_div(rows * channels, int64_t(1) << 20));  // <= ~2^20 group sums
}


// Valid taps of one axis: k in [lo, hi) with 0 <= o * s - pad + k * d < in.
inline void valid_taps(int64_t o, int64_t s, int64_t pad, int64_t d, int64_t k, int64_t in,
                       int64_t* lo, int64_t* hi) {
  const int64_t base = o * s - pad;
  *lo = base >= 0 ? 0 : std::min<int64_t>(k, ceil_div(-base, d));
  *hi = base >= in ? 0 : std::min<int64_t>(k, floor_div(in - 1 - base, d) + 1);
  if (*hi < *lo) *hi = *lo;
}

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

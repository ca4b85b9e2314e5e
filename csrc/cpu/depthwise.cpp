// CPU kernels for the depthwise convolution: forward, grad_input and grad_weight, each for NCHW and
// channels_last (NHWC).
//
// NCHW: each task first "prepares" the source rows it needs, in the accumulation type (float for
// the half types), so that for every tap kw the values a row of results needs are contiguous and
// zero where they fall in the padding (see TapRows). The inner loops then keep a block of B results
// in registers across all taps of the window: branch-free, unit-stride and vectorised.
// NHWC: the inner loops run over a block of channels, contiguous in memory, with the block's sums in
// registers across the taps; bounds are resolved per pixel, outside the channel loops.
//
// Every result element is produced by exactly one task in a fixed order (the weight gradient is
// reduced over a fixed partition of the work, then in order), so results do not depend on the
// number of threads, and no atomics are needed.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "../common/depthwise_host.h"
#include "simd.h"

namespace atrous {
namespace {

// Enough tasks for load balance over any thread count, still a fixed function of the shape.
inline int64_t split_rows(int64_t units, int64_t rows) {
  const int64_t want = 64;
  if (units >= want) return 1;
  return std::min<int64_t>(rows, ceil_div(want, std::max<int64_t>(units, 1)));
}

template <typename scalar_t, typename acc_t>
std::vector<acc_t> to_acc(const scalar_t* src, int64_t n) {
  std::vector<acc_t> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<acc_t>(src[i]);
  return out;
}

// The weight [Co][taps] as acc_t, transposed to [taps][Co] for the channels_last kernels.
template <typename acc_t, typename scalar_t>
std::vector<acc_t> transposed_weight(const scalar_t* weight, int64_t Co, int64_t taps) {
  std::vector<acc_t> wt(taps * Co);
  for (int64_t co = 0; co < Co; ++co)
    for (int64_t t = 0; t < taps; ++t) wt[t * Co + co] = static_cast<acc_t>(weight[co * taps + t]);
  return wt;
}


// ---------------------------------------------------------------------------------------------
// NCHW
// ---------------------------------------------------------------------------------------------

// How the values one row of results needs from one source row are laid out in a prepared buffer:
// for tap kw, result i (0 <= i < n_round) reads buf[offset[kw] + i].
//  - phase mode: the row split into its s phases (phase r holds x[i * s + r - p]), so that every
//    tap is a shifted window of one phase; for unit stride that is one zero-padded copy.
//  - expand mode: one gathered row per tap, kW * n_round values.
// Phase mode is used only when it is no larger than expand mode, so a buffer never exceeds
// kW * n_round values whatever the stride, padding and dilation.
struct TapRows {
  bool phases = true;
  int64_t phase_len = 0;  // values per phase
  int64_t len = 0;        // values per prepared row
  std::vector<int64_t> offset;
};

// Forward (and weight gradient): result ow of tap kw reads x[ow * s + kw * d - p].
inline TapRows forward_taps(int64_t n_round, int64_t kW, int64_t s, int64_t d) {
  TapRows t;
  t.phase_len = n_round + ((kW - 1) * d) / s;
  t.phases = s * t.phase_len <= kW * n_round;
  t.len = t.phases ? s * t.phase_len : kW * n_round;
  for (int64_t kw = 0; kw < kW; ++kw)
    t.offset.push_back(t.phases ? ((kw * d) % s) * t.phase_len + (kw * d) / s : kw * n_round);
  return t;
}

// dst[j] = src[j - shift] for j in [0, len), zero where that falls outside [0, n).
template <typename scalar_t, typename acc_t>
void shifted_copy(acc_t* __restrict dst, int64_t len, const scalar_t* __restrict src, int64_t n,
                  int64_t shift) {
  const int64_t lo = std::clamp<int64_t>(shift, 0, len);
  const int64_t hi = std::clamp<int64_t>(n + shift, lo, len);
  std::fill(dst, dst + lo, acc_t(0));
  for (int64_t j = lo; j < hi; ++j) dst[j] = static_cast<acc_t>(src[j - shift]);
  std::fill(dst + hi, dst + len, acc_t(0));
}

// row[o] = x[o * s + off] for o in [0, n), zero where that falls outside [0, W).
template <typename scalar_t, typename acc_t>
void strided_copy(acc_t* __restrict row, int64_t n, const scalar_t* __restrict x, int64_t W,
                  int64_t s, int64_t off) {
  int64_t lo, hi;
  valid_out_range(off, s, W, n, &lo, &hi);
  std::fill(row, row + lo, acc_t(0));
  const scalar_t* __restrict src = x + off;
  if (s == 2) {  // a constant stride lets the compiler vectorise the gather (MobileNet's stride 2)
    for (int64_t o = lo; o < hi; ++o) row[o] = static_cast<acc_t>(src[o * 2]);
  } else {
    for (int64_t o = lo; o < hi; ++o) row[o] = static_cast<acc_t>(src[o * s]);
  }
  std::fill(row + hi, row + n, acc_t(0));
}

template <typename scalar_t, typename acc_t>
void prepare_forward_row(const TapRows& t, acc_t* dst, const scalar_t* x, int64_t W, int64_t n_round,
                         int64_t kW, int64_t s, int64_t d, int64_t p) {
  if (t.phases && s == 1) {
    shifted_copy(dst, t.len, x, W, p);
  } else if (t.phases) {
    for (int64_t r = 0; r < s; ++r) strided_copy(dst + r * t.phase_len, t.phase_len, x, W, s, r - p);
  } else {
    for (int64_t kw = 0; kw < kW; ++kw) strided_copy(dst + kw * n_round, n_round, x, W, s, kw * d - p);
  }
}

// grad_input: result iw of tap kw reads g[(iw + p - kw * d) / s] when that divides exactly.
// Phase mode here is one row with g[o] at (kW - 1) * d - p + o * s and zeros between (for stride
// s > 1 the zeros stand for the inputs no output reaches through that tap), every tap a shifted
// window of it.
inline TapRows backward_taps(int64_t n_round, int64_t kW, int64_t d) {
  TapRows t;
  t.phases = (kW - 1) * d + n_round <= kW * n_round;
  t.len = t.phases ? n_round + (kW - 1) * d : kW * n_round;
  for (int64_t kw = 0; kw < kW; ++kw)
    t.offset.push_back(t.phases ? (kW - 1 - kw) * d : kw * n_round);
  return t;
}

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define ATROUS_HAS_SHUFFLEVECTOR 1
// The first (HIGH: second) half of v's lanes, each followed by a zero.
template <bool HIGH, typename V, size_t... I>
inline V interleave_zeros_impl(V v, std::index_sequence<I...>) {
  constexpr int L = sizeof...(I);
  return __builtin_shufflevector(v, V{}, ((I % 2) ? L : (HIGH ? L / 2 : 0) + I / 2)...);
}

template <bool HIGH, typename V>
inline V interleave_zeros(V v) {
  return interleave_zeros_impl<HIGH>(v, std::make_index_sequence<sizeof(V) / sizeof(v[0])>{});
}
#endif

template <typename scalar_t, typename acc_t>
void prepare_backward_row(const TapRows& t, acc_t* dst, const scalar_t* g, int64_t oW,
                          int64_t n_round, int64_t kW, int64_t s, int64_t d, int64_t p) {
  const int64_t shift = (kW - 1) * d - p;
  if (t.phases && s == 1) {  // dst[j] = g[j - shift]
    shifted_copy(dst, t.len, g, oW, shift);
    return;
  }
  if (t.phases) {  // dst[shift + o * s] = g[o], zero elsewhere
    std::fill(dst, dst + t.len, acc_t(0));
    int64_t lo, hi;
    valid_out_range(shift, s, t.len, oW, &lo, &hi);
    acc_t* __restrict row = dst + shift;
    if (s == 2) {
      int64_t o = lo;
#ifdef ATROUS_HAS_SHUFFLEVECTOR
      if constexpr (std::is_same_v<scalar_t, acc_t>) {  // vectors of g interleaved with zeros
        using S = Simd<acc_t>;
        for (; o + S::kLanes <= hi; o += S::kLanes) {
          const auto v = S::load(g + o);
          S::store(row + 2 * o, interleave_zeros<false>(v));
          S::store(row + 2 * o + S::kLanes, interleave_zeros<true>(v));
        }
      }
#endif
      for (; o < hi; ++o) row[o * 2] = static_cast<acc_t>(g[o]);
    } else {
      for (int64_t o = lo; o < hi; ++o) row[o * s] = static_cast<acc_t>(g[o]);
    }
    return;
  }
  // row[o * s + kw * d - p] = g[o] for the outputs o whose input column lies in [0, n_round);
  // every other value is zero.
  std::fill(dst, dst + kW * n_round, acc_t(0));
  for (int64_t kw = 0; kw < kW; ++kw) {
    int64_t lo, hi;
    valid_out_range(kw * d - p, s, n_round, oW, &lo, &hi);
    acc_t* __restrict row = dst + kw * n_round + kw * d - p;
    if (s == 2) {  // a constant stride lets the compiler vectorise the scatter
      for (int64_t o = lo; o < hi; ++o) row[o * 2] = static_cast<acc_t>(g[o]);
    } else {
      for (int64_t o = lo; o < hi; ++o) row[o * s] = static_cast<acc_t>(g[o]);
    }
  }
}

// One prepared source row and the kW weights it is multiplied with.
template <typename acc_t>
struct Entry {
  const acc_t* row;
  const acc_t* w;
};

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
// known at compile time, else 0).
template <int K, int KW, typename acc_t>
inline void accumulate_taps(typename Simd<acc_t>::vec (&a)[K], const acc_t* row, const acc_t* w,
                            const int64_t* offset, int64_t kW) {
  using S = Simd<acc_t>;
  if constexpr (KW > 0) kW = KW;
#pragma GCC unroll 8
  for (int64_t kw = 0; kw < kW; ++kw) {
    const auto wv = S::broadcast(w[kw]);
    const acc_t* v = row + offset[kw];
    for (int k = 0; k < K; ++k) a[k] += wv * S::load(v + k * S::kLanes);
  }
}

// Stores the first m (<= K * L) values of the K vectors a at out, converting to scalar_t.
template <int K, typename scalar_t, typename V>
inline void store_block(scalar_t* out, const V (&a)[K], int64_t m) {
  using acc_t = std::remove_cv_t<std::remove_reference_t<decltype(a[0][0])>>;
  using S = Simd<acc_t>;
  constexpr int L = S::kLanes;
  int64_t i = 0;
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    for (; i + L <= m; i += L) S::store(out + i, a[i / L]);
    if (i < m) S::store_first(out + i, a[i / L], m - i);
    return;
  }
  for (; i < m; ++i) out[i] = static_cast<scalar_t>(a[i / L][i % L]);
}

// out[i] = init + sum_e sum_kw e.w[kw] * e.row[offset[kw] + i], for i < n, K vectors at a time
// held in registers across all taps (rows are readable up to n rounded up to the block).
template <int K, int KW, typename scalar_t, typename acc_t>
void correlate_row(scalar_t* __restrict out, int64_t n, acc_t init, const Entry<acc_t>* entries,
                   int64_t n_entries, const int64_t* offset, int64_t kW) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  for (int64_t o0 = 0; o0 < n; o0 += K * L) {
    V acc[K];
    for (int k = 0; k < K; ++k) acc[k] = S::broadcast(init);
    for (int64_t e = 0; e < n_entries; ++e)
      accumulate_taps<K, KW>(acc, entries[e].row + o0, entries[e].w, offset, kW);
    store_block<K>(out + o0, acc, std::min<int64_t>(K * L, n - o0));
  }
}

// Two adjacent rows of results from the same prepared rows: out0 from the weights w0 of each entry,
// out1 from w1 (null where a row does not reach that output row). Each loaded vector feeds both
// rows, which nearly halves the loads of correlate_row when consecutive output rows share input
// rows (unit stride and dilation along H).
template <typename acc_t>
struct Entry2 {
  const acc_t* row;
  const acc_t* w0;
  const acc_t* w1;
};

template <int K, int KW, typename scalar_t, typename acc_t>
void correlate_row2(scalar_t* __restrict out0, scalar_t* __restrict out1, int64_t n, acc_t init,
                    const Entry2<acc_t>* entries, int64_t n_entries, const int64_t* offset,
                    int64_t kW) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  if constexpr (KW > 0) kW = KW;
  for (int64_t o0 = 0; o0 < n; o0 += K * L) {
    V a0[K], a1[K];
    for (int k = 0; k < K; ++k) a0[k] = a1[k] = S::broadcast(init);
    for (int64_t e = 0; e < n_entries; ++e) {
      const acc_t* row = entries[e].row + o0;
      const acc_t* w0 = entries[e].w0;
      const acc_t* w1 = entries[e].w1;
      if (w0 && w1) {
#pragma GCC unroll 8
        for (int64_t kw = 0; kw < kW; ++kw) {
          const V w0v = S::broadcast(w0[kw]), w1v = S::broadcast(w1[kw]);
          const acc_t* v = row + offset[kw];
          for (int k = 0; k < K; ++k) {
            const V x = S::load(v + k * L);
            a0[k] += w0v * x;
            a1[k] += w1v * x;
          }
        }
      } else if (w0) {  // the first or last row of the window pair feeds one output row only
        accumulate_taps<K, KW>(a0, row, w0, offset, kW);
      } else {
        accumulate_taps<K, KW>(a1, row, w1, offset, kW);
      }
    }
    const int64_t m = std::min<int64_t>(K * L, n - o0);
    store_block<K>(out0 + o0, a0, m);
    store_block<K>(out1 + o0, a1, m);
  }
}

// Picks the register block (K vectors) for rows of n results and calls
// f(std::integral_constant<int, K>).
template <typename acc_t, typename F>
void with_block(int64_t n, F&& f) {
  constexpr int L = Simd<acc_t>::kLanes;
  if (n > 2 * L) {
    f(std::integral_constant<int, 4>{});
  } else if (n > L) {
    f(std::integral_constant<int, 2>{});
  } else {
    f(std::integral_constant<int, 1>{});
  }
}

// with_block for the correlate kernels: f(std::integral_constant<int, K>, kernel width as in
// with_kernel_width).
template <typename acc_t, typename F>
void with_block_kw(int64_t n, int64_t kW, F&& f) {
  with_kernel_width(kW, [&](auto KC) { with_block<acc_t>(n, [&](auto B) { f(B, KC); }); });
}

template <typename acc_t>
inline int64_t block_for(int64_t n) {
  constexpr int L = Simd<acc_t>::kLanes;
  return n > 2 * L ? 4 * L : (n > L ? 2 * L : L);
}

// NCHW forward of whole planes with unit stride: the plane, zero-padded to a pitch of
// Wp = out_w + (kW - 1) * dW columns and Hp = out_h + (kH - 1) * dH rows, is one long row, and
// result oh * Wp + ow reads buf[(oh + kh * dH) * Wp + ow + kw * dW]. One correlate_row over
// out_h * Wp results (the kernel rows as entries, the columns as offsets) replaces a call per
// output row, whose fixed costs dominate narrow rows; the Wp - out_w extra results of each row
// are computed and dropped.
template <typename scalar_t, typename acc_t>
void forward_nchw_flat(const DepthwiseParams& p, const scalar_t* in, const acc_t* w,
                       const scalar_t* bias, scalar_t* out) {
  constexpr int L = Simd<acc_t>::kLanes;
  constexpr int K = 4;
  const int64_t kH = p.kernel_h, kW = p.kernel_w, taps = kH * kW;
  const int64_t Wp = p.out_w + (kW - 1) * p.dil_w;
  const int64_t Hp = p.out_h + (kH - 1) * p.dil_h;
  const int64_t n = p.out_h * Wp;
  const int64_t n_round = ceil_div(n, K * L) * K * L;
  // correlate_row reads entry kh from kh * dH * Wp to n_round + (kW - 1) * dW past it.
  const int64_t buf_len = std::max(Hp * Wp, (kH - 1) * p.dil_h * Wp + n_round + (kW - 1) * p.dil_w);
  std::vector<int64_t> offset(kW);
  for (int64_t kw = 0; kw < kW; ++kw) offset[kw] = kw * p.dil_w;
  at::parallel_for(0, p.batch * p.out_channels, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> buf(buf_len, acc_t(0)), res(n_round);  // past Hp * Wp: zeros, never written
    std::vector<Entry<acc_t>> entries(kH);
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t nb = plane / p.out_channels, co = plane % p.out_channels;
      const scalar_t* x = in + (nb * p.channels + co / p.mult) * p.in_h * p.in_w;
      for (int64_t r = 0; r < Hp; ++r) {
        const int64_t ih = r - p.pad_h;
        acc_t* dst = buf.data() + r * Wp;
        if (ih < 0 || ih >= p.in_h) {
          std::fill(dst, dst + Wp, acc_t(0));
        } else {
          shifted_copy(dst, Wp, x + ih * p.in_w, p.in_w, p.pad_w);
        }
      }
      const acc_t* wc = w + co * taps;
      for (int64_t kh = 0; kh < kH; ++kh) entries[kh] = {buf.data() + kh * p.dil_h * Wp, wc + kh * kW};
      with_kernel_width(kW, [&](auto KC) {
        correlate_row<K, decltype(KC)::value>(res.data(), n,
                                              bias ? static_cast<acc_t>(bias[co]) : acc_t(0),
                                              entries.data(), kH, offset.data(), kW);
      });
      scalar_t* o = out + plane * p.out_h * p.out_w;
      for (int64_t oh = 0; oh < p.out_h; ++oh)
        for (int64_t ow = 0; ow < p.out_w; ++ow)
          o[oh * p.out_w + ow] = static_cast<scalar_t>(res[oh * Wp + ow]);
    }
  });
}

// One column vector (L output columns) of R output rows, for a KH x KW kernel: x points at the
// sweep's first input row as prepared (see forward_nchw_sweep), input row j of the sweep x_step
// further on, tap column kw at tap_off[kw] (kw * dW for unit stride, SH = 1: the sweeps pair unit
// strides and strides of 2); output q reads rows q * SH + kh. Each input vector,
// loaded once per row j and tap column kw, feeds every output it meets (through kernel row
// j - q * SH), so a load serves up to KH / SH products. The first `rows` outputs and `lanes` lanes
// are stored, out_step apart.
template <int R, int KH, int KW, int SH, typename scalar_t, typename acc_t>
inline void sweep_column(scalar_t* __restrict out, int64_t out_step, int64_t rows, int64_t lanes,
                         const acc_t* __restrict x, int64_t x_step, const int64_t* tap_off,
                         int64_t dW, const acc_t* __restrict w, acc_t bias) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  V acc[R];
  for (int q = 0; q < R; ++q) acc[q] = S::broadcast(bias);
#pragma GCC unroll 32
  for (int j = 0; j < (R - 1) * SH + KH; ++j) {
#pragma GCC unroll 8
    for (int kw = 0; kw < KW; ++kw) {
      const V v = S::load(x + j * x_step + (SH == 1 ? kw * dW : tap_off[kw]));
#pragma GCC unroll 16
      for (int q = 0; q < R; ++q) {
        const int kh = j - q * SH;
        if (kh >= 0 && kh < KH) acc[q] += v * S::broadcast(w[kh * KW + kw]);
      }
    }
  }
  for (int q = 0; q < rows; ++q) store_block<1>(out + q * out_step, {acc[q]}, lanes);
}

// NCHW forward for a square kernel of 3, 5 or 7 (K) with unit stride, or stride 2 and no
// dilation along H (SH): each task copies its input rows, zero-padded, into a buffer, each row as
// its sW column phases (phase r holds padded columns i * sW + r, so that every tap column is a
// contiguous run of one phase), then sweeps each column vector down its output rows R at a time
// (sweep_column). With unit stride, the rows of one sweep are dH apart, so that dilated kernels
// share loads the same way.
template <int K, int SH, typename scalar_t, typename acc_t>
void forward_nchw_sweep(const DepthwiseParams& p, const scalar_t* in, const acc_t* w,
                        const scalar_t* bias, scalar_t* out) {
  constexpr int L = Simd<acc_t>::kLanes;
  constexpr int R = 8;
  const int64_t dH = p.dil_h, sW = p.stride_w, taps = K * K;
  const int64_t ncv = ceil_div(p.out_w, L);
  const int64_t Lp = ncv * L + (K - 1) * p.dil_w / sW;  // one phase of a row
  const int64_t Wr = sW * Lp;                            // a prepared row
  int64_t tap_off[K];
  for (int64_t kw = 0; kw < K; ++kw) tap_off[kw] = (kw * p.dil_w) % sW * Lp + kw * p.dil_w / sW;
  const int64_t planes = p.batch * p.out_channels;
  const int64_t rblocks = split_rows(planes, p.out_h);
  const int64_t rows_per = ceil_div(p.out_h, rblocks);
  // Rows of one sweep: dH apart in the input (unit stride) or consecutive.
  const int64_t row_gap = SH == 1 ? dH : 1;
  at::parallel_for(0, planes * rblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> buf;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task / rblocks;
      const int64_t oh0 = (task % rblocks) * rows_per;
      const int64_t oh1 = std::min(p.out_h, oh0 + rows_per);
      if (oh0 >= oh1) continue;
      const int64_t n = plane / p.out_channels, co = plane % p.out_channels;
      const scalar_t* x = in + (n * p.channels + co / p.mult) * p.in_h * p.in_w;
      // Padded rows from oh0 * SH on (input row ih is padded row ih + pad_h): those the block
      // reads, then room for the rows a short last sweep reads for results it drops (left as
      // they are).
      const int64_t n_read = (oh1 - oh0 - 1) * SH + (K - 1) * dH + 1;
      buf.resize(std::max<int64_t>(buf.size(), (n_read + R * SH * row_gap) * Wr));
      for (int64_t r = 0; r < n_read; ++r) {
        const int64_t ih = oh0 * SH + r - p.pad_h;
        acc_t* dst = buf.data() + r * Wr;
        if (ih < 0 || ih >= p.in_h) {
          std::fill(dst, dst + Wr, acc_t(0));
        } else if (sW == 1) {
          shifted_copy(dst, Wr, x + ih * p.in_w, p.in_w, p.pad_w);
        } else {
          for (int64_t ph = 0; ph < sW; ++ph)
            strided_copy(dst + ph * Lp, Lp, x + ih * p.in_w, p.in_w, sW, ph - p.pad_w);
        }
      }
      const acc_t* wc = w + co * taps;
      const acc_t b = bias ? static_cast<acc_t>(bias[co]) : acc_t(0);
      scalar_t* o = out + plane * p.out_h * p.out_w;
      for (int64_t ph = 0; ph < row_gap; ++ph) {
        for (int64_t oh = oh0 + ph; oh < oh1; oh += R * row_gap) {
          const int64_t rows = std::min<int64_t>(R, ceil_div(oh1 - oh, row_gap));
          for (int64_t c = 0; c < ncv; ++c) {
            auto sweep = [&](auto RC) {
              sweep_column<decltype(RC)::value, K, K, SH>(
                  o + oh * p.out_w + c * L, row_gap * p.out_w, rows,
                  std::min<int64_t>(L, p.out_w - c * L), buf.data() + (oh - oh0) * SH * Wr + c * L,
                  row_gap * Wr, tap_off, p.dil_w, wc, b);
            };
            if (rows > R / 2) {
              sweep(std::integral_constant<int, R>{});
            } else {
              sweep(std::integral_constant<int, R / 2>{});
            }
          }
        }
      }
    }
  });
}

template <typename scalar_t>
void forward_nchw(const DepthwiseParams& p, const scalar_t* in, const scalar_t* weight,
                  const scalar_t* bias, scalar_t* out) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t taps = p.kernel_h * p.kernel_w;
  const auto w = to_acc<scalar_t, acc_t>(weight, p.out_channels * taps);
  const int64_t planes = p.batch * p.out_channels;
  const int64_t n_round = ceil_div(p.out_w, block_for<acc_t>(p.out_w)) * block_for<acc_t>(p.out_w);
  // Whole planes as one flat row when rows are narrow (per-row costs dominate), or when the padded
  // pitch computes at most 3/4 of the lanes a row-by-row pass would (33-wide rows round up to 64
  // lanes). Wider rows keep the row pairs, which share each load between two output rows.
  const int64_t pitch = p.out_w + (p.kernel_w - 1) * p.dil_w;
  const int64_t L = Simd<acc_t>::kLanes;
  // Sweeps down column vectors for square kernels of 3, 5 or 7 with unit stride, or stride 2
  // without dilation along H, unless rounding the rows up to whole vectors wastes over a third.
  const bool sweep = p.kernel_h == p.kernel_w &&
                     (p.kernel_w == 3 || p.kernel_w == 5 || p.kernel_w == 7) &&
                     ((p.stride_h == 1 && p.stride_w == 1) ||
                      (p.stride_h == 2 && p.stride_w == 2 && p.dil_h == 1)) &&
                     2 * ceil_div(p.out_w, L) * L <= 3 * p.out_w;
  if (sweep) {
    with_kernel_width(p.kernel_w, [&](auto KC) {
      constexpr int K = decltype(KC)::value;
      if constexpr (K > 0) {
        if (p.stride_h == 1) {
          forward_nchw_sweep<K, 1>(p, in, w.data(), bias, out);
        } else {
          forward_nchw_sweep<K, 2>(p, in, w.data(), bias, out);
        }
      }
    });
    return;
  }
  if (p.stride_h == 1 && p.stride_w == 1 && planes >= 64 &&
      (p.out_w <= 32 || 4 * pitch <= 3 * n_round)) {
    forward_nchw_flat(p, in, w.data(), bias, out);
    return;
  }
  const int64_t rblocks = split_rows(planes, p.out_h);
  const int64_t rows_per = ceil_div(p.out_h, rblocks);
  const TapRows t = forward_taps(n_round, p.kernel_w, p.stride_w, p.dil_w);
  // Pairs of output rows share all but one input row when stride and dilation along H are 1.
  const bool pairs = p.stride_h == 1 && p.dil_h == 1 && p.kernel_h > 1;
  at::parallel_for(0, planes * rblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> buf;
    std::vector<Entry<acc_t>> entries(p.kernel_h);
    std::vector<Entry2<acc_t>> entries2(p.kernel_h + 1);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task / rblocks;
      const int64_t oh0 = (task % rblocks) * rows_per;
      const int64_t oh1 = std::min(p.out_h, oh0 + rows_per);
      if (oh0 >= oh1) continue;
      const int64_t n = plane / p.out_channels, co = plane % p.out_channels;
      const scalar_t* x = in + (n * p.channels + co / p.mult) * p.in_h * p.in_w;
      // Input rows the block reads.
      const int64_t ih_lo = std::max<int64_t>(0, oh0 * p.stride_h - p.pad_h);
      const int64_t ih_hi = std::min<int64_t>(
          p.in_h, (oh1 - 1) * p.stride_h - p.pad_h + (p.kernel_h - 1) * p.dil_h + 1);
      buf.resize(std::max<int64_t>(ih_hi - ih_lo, 0) * t.len);
      for (int64_t ih = ih_lo; ih < ih_hi; ++ih)
        prepare_forward_row(t, buf.data() + (ih - ih_lo) * t.len, x + ih * p.in_w, p.in_w, n_round,
                            p.kernel_w, p.stride_w, p.dil_w, p.pad_w);
      const acc_t* wc = w.data() + co * taps;
      const acc_t b = bias ? static_cast<acc_t>(bias[co]) : acc_t(0);
      int64_t oh = oh0;
      for (; pairs && oh + 1 < oh1; oh += 2) {
        // Input rows oh - pad .. oh + 1 - pad + kH - 1; row ih is tap ih - (oh - pad) of output
        // row oh and tap ih - (oh + 1 - pad) of row oh + 1.
        int64_t ne = 0;
        for (int64_t j = 0; j <= p.kernel_h; ++j) {
          const int64_t ih = oh - p.pad_h + j;
          if (ih < 0 || ih >= p.in_h) continue;
          entries2[ne++] = {buf.data() + (ih - ih_lo) * t.len,
                            j < p.kernel_h ? wc + j * p.kernel_w : nullptr,
                            j > 0 ? wc + (j - 1) * p.kernel_w : nullptr};
        }
        scalar_t* o = out + (plane * p.out_h + oh) * p.out_w;
        with_block_kw<acc_t>(p.out_w, p.kernel_w, [&](auto B, auto KC) {
          correlate_row2<decltype(B)::value, decltype(KC)::value>(o, o + p.out_w, p.out_w, b,
                                                                  entries2.data(), ne,
                                             t.offset.data(), p.kernel_w);
        });
      }
      for (; oh < oh1; ++oh) {
        int64_t ne = 0;
        for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
          const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
          if (ih < 0 || ih >= p.in_h) continue;
          entries[ne++] = {buf.data() + (ih - ih_lo) * t.len, wc + kh * p.kernel_w};
        }
        with_block_kw<acc_t>(p.out_w, p.kernel_w, [&](auto B, auto KC) {
          correlate_row<decltype(B)::value, decltype(KC)::value>(
              out + (plane * p.out_h + oh) * p.out_w, p.out_w, b,
                                            entries.data(), ne, t.offset.data(), p.kernel_w);
        });
      }
    }
  });
}

template <typename scalar_t>
void backward_input_nchw(const DepthwiseParams& p, const scalar_t* go, const scalar_t* weight,
                         scalar_t* gi) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t taps = p.kernel_h * p.kernel_w;
  const auto w = to_acc<scalar_t, acc_t>(weight, p.out_channels * taps);
  const int64_t planes = p.batch * p.channels;
  const int64_t rblocks = split_rows(planes, p.in_h);
  const int64_t rows_per = ceil_div(p.in_h, rblocks);
  const int64_t n_round = ceil_div(p.in_w, block_for<acc_t>(p.in_w)) * block_for<acc_t>(p.in_w);
  const TapRows t = backward_taps(n_round, p.kernel_w, p.dil_w);
  // Pairs of input rows share all but one grad_output row when stride and dilation along H are 1.
  const bool pairs = p.stride_h == 1 && p.dil_h == 1 && p.kernel_h > 1;
  at::parallel_for(0, planes * rblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> buf;
    std::vector<Entry<acc_t>> entries(p.kernel_h * p.mult);
    std::vector<Entry2<acc_t>> entries2((p.kernel_h + 1) * p.mult);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task / rblocks;
      const int64_t ih0 = (task % rblocks) * rows_per;
      const int64_t ih1 = std::min(p.in_h, ih0 + rows_per);
      if (ih0 >= ih1) continue;
      const int64_t n = plane / p.channels, c = plane % p.channels;
      // Output rows oh reach input rows oh * s - pad + kh * d; those reaching [ih0, ih1):
      const int64_t oh_lo =
          ceil_div(std::max<int64_t>(ih0 + p.pad_h - (p.kernel_h - 1) * p.dil_h, 0), p.stride_h);
      const int64_t oh_hi =
          std::min<int64_t>(p.out_h, floor_div(ih1 - 1 + p.pad_h, p.stride_h) + 1);
      const int64_t rows = std::max<int64_t>(oh_hi - oh_lo, 0);
      buf.resize(p.mult * rows * t.len);
      for (int64_t j = 0; j < p.mult; ++j) {
        const scalar_t* g = go + (n * p.out_channels + c * p.mult + j) * p.out_h * p.out_w;
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh)
          prepare_backward_row(t, buf.data() + (j * rows + oh - oh_lo) * t.len, g + oh * p.out_w,
                               p.out_w, n_round, p.kernel_w, p.stride_w, p.dil_w, p.pad_w);
      }
      int64_t ih = ih0;
      for (; pairs && ih + 1 < ih1; ih += 2) {
        // grad_output rows oh = ih + pad - kh feed input row ih (tap ih + pad - oh) and ih + 1
        // (tap ih + 1 + pad - oh).
        int64_t ne = 0;
        for (int64_t oh = ih + p.pad_h - (p.kernel_h - 1); oh <= ih + 1 + p.pad_h; ++oh) {
          if (oh < 0 || oh >= p.out_h) continue;
          const int64_t k0 = ih + p.pad_h - oh, k1 = k0 + 1;
          for (int64_t j = 0; j < p.mult; ++j) {
            const acc_t* wj = w.data() + (c * p.mult + j) * taps;
            entries2[ne++] = {buf.data() + (j * rows + oh - oh_lo) * t.len,
                              k0 >= 0 && k0 < p.kernel_h ? wj + k0 * p.kernel_w : nullptr,
                              k1 < p.kernel_h ? wj + k1 * p.kernel_w : nullptr};
          }
        }
        scalar_t* o = gi + (plane * p.in_h + ih) * p.in_w;
        with_block_kw<acc_t>(p.in_w, p.kernel_w, [&](auto B, auto KC) {
          correlate_row2<decltype(B)::value, decltype(KC)::value>(o, o + p.in_w, p.in_w, acc_t(0),
                                                                  entries2.data(), ne,
                                             t.offset.data(), p.kernel_w);
        });
      }
      for (; ih < ih1; ++ih) {
        // grad_output rows oh with ih + pad - oh * s = kh * d for a kernel row kh, in order of kh
        // (two divisions a row rather than two a kernel row).
        int64_t ne = 0;
        const int64_t top = ih + p.pad_h;
        const int64_t oh_first = std::max<int64_t>(0, ceil_div(top - (p.kernel_h - 1) * p.dil_h,
                                                               p.stride_h));
        const int64_t oh_last = std::min<int64_t>(p.out_h - 1, floor_div(top, p.stride_h));
        for (int64_t oh = oh_last; oh >= oh_first; --oh) {
          const int64_t r = top - oh * p.stride_h;  // kh * d
          if (p.dil_h != 1 && r % p.dil_h != 0) continue;
          const int64_t kh = p.dil_h == 1 ? r : r / p.dil_h;
          for (int64_t j = 0; j < p.mult; ++j)
            entries[ne++] = {buf.data() + (j * rows + oh - oh_lo) * t.len,
                             w.data() + (c * p.mult + j) * taps + kh * p.kernel_w};
        }
        with_block_kw<acc_t>(p.in_w, p.kernel_w, [&](auto B, auto KC) {
          correlate_row<decltype(B)::value, decltype(KC)::value>(
              gi + (plane * p.in_h + ih) * p.in_w, p.in_w, acc_t(0),
                                            entries.data(), ne, t.offset.data(), p.kernel_w);
        });
      }
    }
  });
}

// lanes[i] += sum over blocks of g[b + i] * v[b + i], for rows of n_round values, K vectors at a
// time (g is zero past the row's end).
template <int K, typename acc_t>
inline void dot_lanes(acc_t* __restrict lanes, const acc_t* __restrict g, const acc_t* __restrict v,
                      int64_t n_round) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  V a[K];
  for (int k = 0; k < K; ++k) a[k] = S::broadcast(0);
  for (int64_t o0 = 0; o0 < n_round; o0 += K * L)
    for (int k = 0; k < K; ++k) a[k] += S::load(g + o0 + k * L) * S::load(v + o0 + k * L);
  for (int k = 0; k < K; ++k) S::store(lanes + k * L, S::load(lanes + k * L) + a[k]);
}

// lanes[kw * L + i] += sum over rows and vectors of g[o + i] * x[offset[kw] + o + i] for the KW
// taps of one kernel row: each grad_output vector is loaded once for the KW taps, and the sums stay
// in registers over all the rows given (xrows[r]: the prepared input row that grad row grows[r]
// meets at this kernel row).
template <int KW, typename acc_t>
inline void row_taps_nchw(acc_t* __restrict lanes, const acc_t* const* xrows,
                          const acc_t* const* grows, int64_t n_rows, const int64_t* offset,
                          int64_t n_round) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  V a[KW];
  for (int kw = 0; kw < KW; ++kw) a[kw] = S::broadcast(0);
  for (int64_t r = 0; r < n_rows; ++r) {
    const acc_t* g = grows[r];
    const acc_t* x = xrows[r];
    for (int64_t o0 = 0; o0 < n_round; o0 += L) {
      const V gv = S::load(g + o0);
      for (int kw = 0; kw < KW; ++kw) a[kw] += gv * S::load(x + offset[kw] + o0);
    }
  }
  for (int kw = 0; kw < KW; ++kw) S::store(lanes + kw * L, S::load(lanes + kw * L) + a[kw]);
}

// The bias gradient (each channel's sum of grad_output) is summed in one order whatever the layout
// and whichever op computes it (the bias op, or the weight op with it), so that it is the same bit
// for bit whichever other gradients are asked for. The rows r = n * out_h + oh go in groups of
// bias_group_rows(rows, C) consecutive rows; within a group, lane j of L (the vector width) sums,
// row after row, each row's values j, j + L, j + 2L, ...; a group's sum is its lanes added in
// order from lane 0, and the total is the groups' sums added in order.
inline int64_t bias_group_rows(int64_t rows, int64_t channels) {
  return std::max<int64_t>(4, ceil_div(rows * channels, int64_t(1) << 20));  // <= ~2^20 group sums
}

// NCHW: one channel's bias sum, fed its rows in order.
template <typename acc_t>
struct ChannelBiasSum {
  using S = Simd<acc_t>;
  static constexpr int L = S::kLanes;
  int64_t group, rows;
  typename S::vec lanes = S::broadcast(0);
  acc_t total = 0;
  ChannelBiasSum(int64_t rows_, int64_t channels) : group(bias_group_rows(rows_, channels)), rows(rows_) {}
  template <typename src_t>
  void add_row(int64_t r, const src_t* g, int64_t n) {
    for (int64_t i = 0; i < n; i += L) {
      if constexpr (std::is_same_v<src_t, acc_t>) {
        lanes += i + L <= n ? S::load(g + i) : S::load_first(g + i, n - i);
      } else {
        typename S::vec v;
        for (int j = 0; j < L; ++j) v[j] = i + j < n ? static_cast<acc_t>(g[i + j]) : acc_t(0);
        lanes += v;
      }
    }
    if ((r + 1) % group == 0 || r + 1 == rows) {
      acc_t s = 0;
      for (int j = 0; j < L; ++j) s += lanes[j];
      total += s;
      lanes = S::broadcast(0);
    }
  }
};

// With gb, also the bias gradient (each channel's sum of grad_output), from the grad_output plane
// already copied for the weight gradient: one read of grad_output for both.
template <typename scalar_t>
void backward_weight_nchw(const DepthwiseParams& p, const scalar_t* go, const scalar_t* in,
                          scalar_t* gw, scalar_t* gb) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t taps = p.kernel_h * p.kernel_w;
  const int64_t Bn = block_for<acc_t>(p.out_w);  // values per lane block
  const int64_t n_round = ceil_div(p.out_w, Bn) * Bn;
  const TapRows t = forward_taps(n_round, p.kernel_w, p.stride_w, p.dil_w);
  // Kernel widths 3, 5 and 7 take a kernel row's taps at once (row_taps_nchw); the sums of tap t
  // then sit in lanes[t * L ...] (one vector) rather than lanes[t * Bn ...].
  const bool row_taps = p.kernel_w == 3 || p.kernel_w == 5 || p.kernel_w == 7;
  constexpr int L = Simd<acc_t>::kLanes;
  at::parallel_for(0, p.out_channels, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> xbuf(p.in_h * t.len), gbuf(p.out_h * n_round, acc_t(0));
    std::vector<acc_t> lanes(taps * Bn);
    std::vector<const acc_t*> xr(p.out_h), gr(p.out_h);
    for (int64_t co = begin; co < end; ++co) {
      std::fill(lanes.begin(), lanes.end(), acc_t(0));
      ChannelBiasSum<acc_t> bias_sum(p.batch * p.out_h, p.out_channels);
      for (int64_t n = 0; n < p.batch; ++n) {
        const scalar_t* x = in + (n * p.channels + co / p.mult) * p.in_h * p.in_w;
        const scalar_t* g = go + (n * p.out_channels + co) * p.out_h * p.out_w;
        for (int64_t ih = 0; ih < p.in_h; ++ih)
          prepare_forward_row(t, xbuf.data() + ih * t.len, x + ih * p.in_w, p.in_w, n_round,
                              p.kernel_w, p.stride_w, p.dil_w, p.pad_w);
        for (int64_t oh = 0; oh < p.out_h; ++oh)
          for (int64_t ow = 0; ow < p.out_w; ++ow)
            gbuf[oh * n_round + ow] = static_cast<acc_t>(g[oh * p.out_w + ow]);
        if (gb) {  // from the rows already converted
          for (int64_t oh = 0; oh < p.out_h; ++oh)
            bias_sum.add_row(n * p.out_h + oh, gbuf.data() + oh * n_round, p.out_w);
        }
        if (row_taps) {
          // A kernel row's taps at once, over all the output rows that reach it.
          for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
            int64_t nr = 0;
            for (int64_t oh = 0; oh < p.out_h; ++oh) {
              const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
              if (ih < 0 || ih >= p.in_h) continue;
              xr[nr] = xbuf.data() + ih * t.len;
              gr[nr++] = gbuf.data() + oh * n_round;
            }
            acc_t* l = lanes.data() + kh * p.kernel_w * L;
            if (p.kernel_w == 3) {
              row_taps_nchw<3>(l, xr.data(), gr.data(), nr, t.offset.data(), n_round);
            } else if (p.kernel_w == 5) {
              row_taps_nchw<5>(l, xr.data(), gr.data(), nr, t.offset.data(), n_round);
            } else {
              row_taps_nchw<7>(l, xr.data(), gr.data(), nr, t.offset.data(), n_round);
            }
          }
          continue;
        }
        for (int64_t oh = 0; oh < p.out_h; ++oh) {
          const acc_t* grow = gbuf.data() + oh * n_round;
          for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
            const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
            if (ih < 0 || ih >= p.in_h) continue;
            const acc_t* xrow = xbuf.data() + ih * t.len;
            for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
              acc_t* l = lanes.data() + (kh * p.kernel_w + kw) * Bn;
              with_block<acc_t>(p.out_w, [&](auto B) {
                dot_lanes<decltype(B)::value>(l, grow, xrow + t.offset[kw], n_round);
              });
            }
          }
        }
      }
      for (int64_t tap = 0; tap < taps; ++tap) {
        acc_t s = 0;
        if (row_taps) {
          for (int64_t i = 0; i < L; ++i) s += lanes[tap * L + i];
        } else {
          for (int64_t i = 0; i < Bn; ++i) s += lanes[tap * Bn + i];
        }
        gw[co * taps + tap] = static_cast<scalar_t>(s);
      }
      if (gb) gb[co] = static_cast<scalar_t>(bias_sum.total);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// NHWC (channels_last)
// ---------------------------------------------------------------------------------------------

// Channels per register block: 4 vectors.
template <typename acc_t>
constexpr int kCB = 4 * Simd<acc_t>::kLanes;

// Rows of an NHWC image as acc_t with Co channels (channel co holds input channel co / m): a
// pointer into the tensor when no conversion, expansion or padding is needed, else copied per
// task. With pad_left / pad_right the copies carry that many zero columns at each end, so that
// pixel(r, iw) is readable for iw in [-pad_left, in_w + pad_right); forward_nhwc uses copy_row
// alone to pad the whole input once.
template <typename scalar_t, typename acc_t>
struct PixelRows {
  const DepthwiseParams& p;
  const int64_t pad_left, width;  // columns of a copied row
  const scalar_t* image = nullptr;  // (H, W, C) of one batch element
  std::vector<acc_t> buf;
  int64_t first = 0;
  static constexpr bool kConvert = !std::is_same_v<scalar_t, acc_t>;

  PixelRows(const DepthwiseParams& params, int64_t pad_l = 0, int64_t pad_r = 0)
      : p(params), pad_left(pad_l), width(params.in_w + pad_l + pad_r) {}
  bool direct() const { return !kConvert && p.mult == 1 && width == p.in_w; }

  void load(const scalar_t* img, int64_t r0, int64_t r1) {
    image = img;
    first = r0;
    if (direct()) return;
    const int64_t Co = p.out_channels, C = p.channels;
    buf.resize(std::max<int64_t>(r1 - r0, 0) * width * Co);
    for (int64_t r = r0; r < r1; ++r) copy_row(buf.data() + (r - r0) * width * Co, img + r * p.in_w * C);
  }
  // One row of `width` columns: zeros, the input row converted and expanded to Co channels, zeros.
  void copy_row(acc_t* dst, const scalar_t* src_row) const {
    const int64_t Co = p.out_channels, C = p.channels, m = p.mult;
    std::fill(dst, dst + pad_left * Co, acc_t(0));
    std::fill(dst + (pad_left + p.in_w) * Co, dst + width * Co, acc_t(0));
    acc_t* dst_row = dst + pad_left * Co;
    if (!kConvert && m == 1) {
      std::memcpy(dst_row, src_row, p.in_w * C * sizeof(acc_t));
      return;
    }
    for (int64_t iw = 0; iw < p.in_w; ++iw)
      for (int64_t co = 0; co < Co; ++co)
        dst_row[iw * Co + co] = static_cast<acc_t>(src_row[iw * C + co / m]);
  }
  const acc_t* pixel(int64_t r, int64_t iw) const {
    if constexpr (!kConvert) {
      if (direct()) return image + (r * p.in_w + iw) * p.channels;
    }
    return buf.data() + ((r - first) * width + pad_left + iw) * p.out_channels;
  }
};

// Valid taps of one axis: k in [lo, hi) with 0 <= o * s - pad + k * d < in.
inline void valid_taps(int64_t o, int64_t s, int64_t pad, int64_t d, int64_t k, int64_t in,
                       int64_t* lo, int64_t* hi) {
  const int64_t base = o * s - pad;
  *lo = base >= 0 ? 0 : std::min<int64_t>(k, ceil_div(-base, d));
  *hi = base >= in ? 0 : std::min<int64_t>(k, floor_div(in - 1 - base, d) + 1);
  if (*hi < *lo) *hi = *lo;
}

// out[i] = init[i] + sum_e x_e[cb + i] * w_e[cb + i] for i < n; N > 0 is the unrolled case n == N.
template <typename acc_t>
struct ChannelTerm {
  const acc_t* x;
  const acc_t* w;
};

template <int K, typename scalar_t, typename acc_t>
inline void channel_block(scalar_t* __restrict out, const acc_t* __restrict init, int64_t cb,
                          const ChannelTerm<acc_t>* terms, int64_t n_terms) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  V a[K];
  for (int k = 0; k < K; ++k) a[k] = S::load(init + cb + k * L);
  for (int64_t e = 0; e < n_terms; ++e) {
    const acc_t* x = terms[e].x + cb;
    const acc_t* w = terms[e].w + cb;
    for (int k = 0; k < K; ++k) a[k] += S::load(x + k * L) * S::load(w + k * L);
  }
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    for (int k = 0; k < K; ++k) S::store(out + cb + k * L, a[k]);
  } else {
    for (int i = 0; i < K * L; ++i) out[cb + i] = static_cast<scalar_t>(a[i / L][i % L]);
  }
}

// Runs channel_block over all channels of a pixel: blocks of 4 vectors, then single vectors, then
// the last channels one at a time.
template <typename scalar_t, typename acc_t>
inline void channel_blocks(scalar_t* out, const acc_t* init, int64_t channels,
                           const ChannelTerm<acc_t>* terms, int64_t n_terms) {
  constexpr int L = Simd<acc_t>::kLanes;
  int64_t cb = 0;
  for (; cb + 4 * L <= channels; cb += 4 * L) channel_block<4>(out, init, cb, terms, n_terms);
  for (; cb + L <= channels; cb += L) channel_block<1>(out, init, cb, terms, n_terms);
  for (; cb < channels; ++cb) {
    acc_t s = init[cb];
    for (int64_t e = 0; e < n_terms; ++e) s += terms[e].x[cb] * terms[e].w[cb];
    out[cb] = static_cast<scalar_t>(s);
  }
}

// Stores P vectors of W channels, the pixels `step` elements apart, converting to scalar_t.
template <int P, typename scalar_t, typename V>
inline void store_pixels(scalar_t* out, int64_t step, const V (&acc)[P]) {
  using acc_t = std::remove_cv_t<std::remove_reference_t<decltype(acc[0][0])>>;
  constexpr int W = sizeof(V) / sizeof(acc_t);
  for (int q = 0; q < P; ++q) {
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      Simd<acc_t, W>::store(out + q * step, acc[q]);
    } else {
      for (int i = 0; i < W; ++i) out[q * step + i] = static_cast<scalar_t>(acc[q][i]);
    }
  }
}

// Channels [cb0, cb1) of the channels_last forward, computed with vectors of `width` lanes (its
// chunks), cb1 - cb0 a multiple of the width.
struct Run {
  int64_t cb0, cb1;
  int width;
};

// A pixel's channels as runs: full vectors, then at most one vector each of half, a quarter, ... of
// the full width for the last channels, so that every channel goes through the vector kernels.
template <typename acc_t>
std::vector<Run> channel_runs(int64_t Co) {
  constexpr int L = Simd<acc_t>::kLanes;
  std::vector<Run> runs;
  int64_t cb = Co / L * L;
  if (cb > 0) runs.push_back({0, cb, L});
  for (int w = L / 2; w >= 1; w /= 2) {
    if (cb + w <= Co) {
      runs.push_back({cb, cb + w, w});
      cb += w;
    }
  }
  return runs;
}

// The largest block of 8, 4, 2 or 1 pixels that n (>= 1) pixels fill.
inline int pixel_block(int64_t n) { return n >= 8 ? 8 : n >= 4 ? 4 : n >= 2 ? 2 : 1; }

// Calls f(std::integral_constant<int, P>) for a block of P = pb pixels (8, 4, 3, 2 or 1).
template <typename F>
inline void with_pixels(int pb, F&& f) {
  if (pb == 8) return f(std::integral_constant<int, 8>{});
  if (pb == 4) return f(std::integral_constant<int, 4>{});
  if (pb == 3) return f(std::integral_constant<int, 3>{});
  if (pb == 2) return f(std::integral_constant<int, 2>{});
  f(std::integral_constant<int, 1>{});
}

// Calls f(std::integral_constant<int, W>) for a run's width W.
template <typename acc_t, typename F>
inline void with_width(int width, F&& f) {
  constexpr int L = Simd<acc_t>::kLanes;
  if (width == L) return f(std::integral_constant<int, L>{});
  if (width == L / 2) return f(std::integral_constant<int, L / 2>{});
  if (width == L / 4) return f(std::integral_constant<int, L / 4>{});
  if constexpr (L / 8 >= 1) {
    if (width == L / 8) return f(std::integral_constant<int, L / 8>{});
  }
  if constexpr (L / 16 >= 1) {
    if (width == L / 16) return f(std::integral_constant<int, L / 16>{});
  }
}

// P output pixels, taps kw in [kw_lo, kw_hi) of the rows given (all inside the input for every
// one of the P pixels), a run's chunks of W channels one at a time (weights: chunk cb's [tap][W]
// from wt + cb * taps): each weight vector is loaded once for the P pixels, whose sums stay in
// registers. out and the rows point at their pixels' first channel.
template <int P, int W, typename scalar_t, typename acc_t>
inline void chunk_pixels(scalar_t* __restrict out, const acc_t* __restrict b,
                         const acc_t* __restrict wt, const acc_t* const* xrow, Run run,
                         const int64_t* kh_of, int64_t n_rows, int64_t first_col,
                         const DepthwiseParams& p, int64_t kw_lo, int64_t kw_hi) {
  using S = Simd<acc_t, W>;
  using V = typename S::vec;
  const int64_t Co = p.out_channels, taps = p.kernel_h * p.kernel_w;
  const int64_t step = p.stride_w * Co;  // between the P pixels' inputs
  for (int64_t cb = run.cb0; cb < run.cb1; cb += W) {
    const acc_t* wc = wt + cb * taps;
    V acc[P];
    const V bv = S::load(b + cb);
    for (int q = 0; q < P; ++q) acc[q] = bv;
    for (int64_t r = 0; r < n_rows; ++r) {
      const acc_t* wrow = wc + kh_of[r] * p.kernel_w * W;
      const acc_t* xk = xrow[r] + (first_col + kw_lo * p.dil_w) * Co + cb;
      for (int64_t kw = kw_lo; kw < kw_hi; ++kw, xk += p.dil_w * Co) {
        const V wv = S::load(wrow + kw * W);
        for (int q = 0; q < P; ++q) acc[q] += S::load(xk + q * step) * wv;
      }
    }
    store_pixels<P>(out + cb, Co, acc);
  }
}

// One input row x of the unit-stride slide, P pixels `step` elements apart, all kW taps: pixel q's
// tap t reads x[(q + t) * step], so the P pixels' inputs for tap t + 1 are those of tap t shifted
// by one pixel, and P + kW - 1 loads serve P * kW products. The row feeds the sums a0 with the
// kernel row w0 (if A0) and a1 with w1 (if A1): two output rows that share it.
template <int P, int W, int KW, bool A0, bool A1, typename acc_t, typename V>
inline void slide_row(V (&a0)[P], V (&a1)[P], const acc_t* __restrict x, int64_t step,
                      const acc_t* __restrict w0, const acc_t* __restrict w1, int64_t kw_runtime) {
  using S = Simd<acc_t, W>;
  const int64_t kW = KW > 0 ? KW : kw_runtime;
  // A ring of the P input vectors in use: the vector of relative column c lives in slot c % P.
  // After tap t, column t is done with and column P + t, needed from tap t + 1, takes its slot;
  // unrolling P taps keeps every slot index a constant, so the ring stays in registers.
  V xs[P];
  for (int q = 0; q < P; ++q) xs[q] = S::load(x + q * step);
  for (int64_t t0 = 0; t0 < kW; t0 += P) {
#pragma GCC unroll 16
    for (int j = 0; j < P; ++j) {
      const int64_t t = t0 + j;
      if (t < kW) {
        if constexpr (A0) {
          const V wv = S::load(w0 + t * W);
#pragma GCC unroll 16
          for (int q = 0; q < P; ++q) a0[q] += xs[(q + j) % P] * wv;
        }
        if constexpr (A1) {
          const V wv = S::load(w1 + t * W);
#pragma GCC unroll 16
          for (int q = 0; q < P; ++q) a1[q] += xs[(q + j) % P] * wv;
        }
        if (t + 1 < kW) xs[j] = S::load(x + (P + t) * step);
      }
    }
  }
}

// chunk_pixels for unit stride along W, over all kW taps, for P pixels d = dil_w columns apart
// (pixel q's tap kw reads column first_col + (q + kw) * d), each row through slide_row.
template <int P, int W, int KW, typename scalar_t, typename acc_t>
inline void chunk_pixels_s1(scalar_t* __restrict out, const acc_t* __restrict b,
                            const acc_t* __restrict wt, const acc_t* const* xrow, Run run,
                            const int64_t* kh_of, int64_t n_rows, int64_t first_col,
                            const DepthwiseParams& p) {
  using S = Simd<acc_t, W>;
  using V = typename S::vec;
  const int64_t Co = p.out_channels, kW = p.kernel_w, taps = p.kernel_h * kW;
  const int64_t step = p.dil_w * Co;  // between the P pixels, in the input and the output
  for (int64_t cb = run.cb0; cb < run.cb1; cb += W) {
    const acc_t* wc = wt + cb * taps;
    V acc[P];
    const V bv = S::load(b + cb);
    for (int q = 0; q < P; ++q) acc[q] = bv;
    for (int64_t r = 0; r < n_rows; ++r)
      slide_row<P, W, KW, true, false>(acc, acc, xrow[r] + first_col * Co + cb, step,
                                       wc + kh_of[r] * kW * W, wc, kW);
    store_pixels<P>(out + cb, step, acc);
  }
}

// chunk_pixels_s1 for two consecutive output rows (unit stride and dilation along H, every kernel
// row inside the input for both): the kH + 1 input rows xrow[0..kH] are each loaded once for the
// two rows (row r feeds output row 0 through kernel row r and output row 1 through kernel row
// r - 1), which cuts the loads per product by a third for 3x3.
template <int P, int W, int KW, typename scalar_t, typename acc_t>
inline void chunk_pixels_s1_pair(scalar_t* __restrict out0, scalar_t* __restrict out1,
                                 const acc_t* __restrict b, const acc_t* __restrict wt,
                                 const acc_t* const* xrow, Run run, int64_t first_col,
                                 const DepthwiseParams& p) {
  using S = Simd<acc_t, W>;
  using V = typename S::vec;
  const int64_t Co = p.out_channels, kH = p.kernel_h, kW = p.kernel_w, taps = kH * kW;
  const int64_t step = p.dil_w * Co;
  for (int64_t cb = run.cb0; cb < run.cb1; cb += W) {
    const acc_t* wc = wt + cb * taps;
    const int64_t col = first_col * Co + cb;
    V a0[P], a1[P];
    const V bv = S::load(b + cb);
    for (int q = 0; q < P; ++q) a0[q] = a1[q] = bv;
    slide_row<P, W, KW, true, false>(a0, a1, xrow[0] + col, step, wc, wc, kW);
    for (int64_t r = 1; r < kH; ++r)
      slide_row<P, W, KW, true, true>(a0, a1, xrow[r] + col, step, wc + r * kW * W,
                                      wc + (r - 1) * kW * W, kW);
    slide_row<P, W, KW, false, true>(a0, a1, xrow[kH] + col, step, wc, wc + (kH - 1) * kW * W, kW);
    store_pixels<P>(out0 + cb, step, a0);
    store_pixels<P>(out1 + cb, step, a1);
  }
}

// The channels_last forward: the set-up (weights blocked, bias, padded rows), then
// drive(rows), where rows(n, oh0, oh1) computes output rows [oh0, oh1) of image n (any rows, in any
// order or thread: each output pixel's sum is the same chain of products whichever block computes
// it). forward_nhwc drives it over the whole output; the fused backward over chunks of rows.
template <typename scalar_t, typename Drive>
void forward_nhwc_with(const DepthwiseParams& p, const scalar_t* in, const scalar_t* weight,
                       const scalar_t* bias, scalar_t* out, Drive&& drive) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t Co = p.out_channels, taps = p.kernel_h * p.kernel_w;
  std::vector<acc_t> b(Co, acc_t(0));
  if (bias)
    for (int64_t co = 0; co < Co; ++co) b[co] = static_cast<acc_t>(bias[co]);
  // The weights blocked per chunk: a chunk of W channels from cb holds [tap][W] from cb * taps.
  const std::vector<Run> runs = channel_runs<acc_t>(Co);
  std::vector<acc_t> wblocked(Co * taps);
  for (const Run& r : runs)
    for (int64_t cb = r.cb0; cb < r.cb1; cb += r.width)
      for (int64_t t = 0; t < taps; ++t)
        for (int64_t i = 0; i < r.width; ++i)
          wblocked[cb * taps + t * r.width + i] = static_cast<acc_t>(weight[(cb + i) * taps + t]);
  const bool unit_w = p.stride_w == 1 && p.dil_w == 1;
  // Wide kernels leave most columns at the border, where the taps vary by pixel: with unit stride
  // and dilation, rows copied with zero columns make every pixel an interior one.
  const bool padded = unit_w && p.kernel_w > 7;
  const int64_t pad_right =
      padded ? std::max<int64_t>(0, p.out_w + p.kernel_w - 1 - p.pad_w - p.in_w) : 0;
  // Output columns whose taps all lie inside the (padded) input: [ow_in_lo, ow_in_hi).
  const int64_t ow_in_lo = padded ? 0 : ceil_div(p.pad_w, p.stride_w);
  const int64_t ow_in_hi =
      padded ? p.out_w
             : std::max<int64_t>(ow_in_lo, std::min<int64_t>(
                                               p.out_w, floor_div(p.in_w - 1 - (p.kernel_w - 1) * p.dil_w +
                                                                      p.pad_w, p.stride_w) + 1));
  // The padded copy is made once for the whole input (a task's rows plus the kernel's height
  // would copy each input row many times over).
  const PixelRows<scalar_t, acc_t> padder(p, p.pad_w, pad_right);
  std::vector<acc_t> padded_in(padded ? p.batch * p.in_h * padder.width * Co : 0);
  if (padded) {
    at::parallel_for(0, p.batch * p.in_h, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        padder.copy_row(padded_in.data() + r * padder.width * Co, in + r * p.in_w * p.channels);
    });
  }
  // Pairs of output rows share all but one input row when stride and dilation along H are 1.
  // Measured here (2-core Xeon, float32): pairs are 8-12% faster for 5x5, 7x7 and 31x31, but 20%
  // slower for 3x3, whose single rows already keep the FMAs busy.
  const bool pairs = p.stride_h == 1 && p.dil_h == 1 && p.stride_w == 1 && p.kernel_w != 3;
  const int64_t kH = p.kernel_h;
  auto compute_rows = [&](int64_t n, int64_t oh0, int64_t oh1) {
    if (oh0 >= oh1) return;
    PixelRows<scalar_t, acc_t> rows(p);
    std::vector<const acc_t*> xrow(kH + 1);
    std::vector<int64_t> kh_of(kH);
    const int64_t ih_lo = std::max<int64_t>(0, oh0 * p.stride_h - p.pad_h);
    const int64_t ih_hi = std::min<int64_t>(
        p.in_h, (oh1 - 1) * p.stride_h - p.pad_h + (kH - 1) * p.dil_h + 1);
    if (!padded) rows.load(in + n * p.in_h * p.in_w * p.channels, ih_lo, std::max(ih_lo, ih_hi));
    auto row_ptr = [&](int64_t ih) {
      return padded ? padded_in.data() + ((n * p.in_h + ih) * padder.width + p.pad_w) * Co
                    : rows.pixel(ih, 0);
    };
    auto out_row = [&](int64_t oh) { return out + (n * p.out_h + oh) * p.out_w * Co; };
    // Output row oh's valid kernel rows into kh_of and xrow; returns their number.
    auto set_rows = [&](int64_t oh) {
      int64_t kh_lo, kh_hi;
      valid_taps(oh, p.stride_h, p.pad_h, p.dil_h, kH, p.in_h, &kh_lo, &kh_hi);
      for (int64_t r = 0; r < kh_hi - kh_lo; ++r) {
        kh_of[r] = kh_lo + r;
        xrow[r] = row_ptr(oh * p.stride_h - p.pad_h + (kh_lo + r) * p.dil_h);
      }
      return kh_hi - kh_lo;
    };
    // Pixels [a, e) of output row oh, whose rows set_rows has set.
    auto row_pixels = [&](int64_t oh, int64_t n_rows, int64_t a, int64_t e) {
      scalar_t* orow = out_row(oh);
      for (int64_t ow = a; ow < e;) {
        if (ow >= ow_in_lo && ow < ow_in_hi) {
          // Interior pixels in blocks of 8, then 4, 2, 1. With unit stride, blocks of 8 or 4
          // pixels dil_w apart slide along the taps: dil_w such blocks cover 8 or 4 * dil_w
          // consecutive pixels.
          int64_t left = std::min(e, ow_in_hi) - ow;
          const int64_t d = p.dil_w;
          // The last interior pixels of a row, too few for a sliding block of 8: the block of 8
          // that ends with them instead, recomputing some pixels before it (to the same values),
          // rather than narrower blocks, which make fewer products per load. (Not into pixels
          // before `a`: after the row pairs, measured slower for 7x7 and 31x31.)
          if (p.stride_w == 1 && left < 8 * d && e >= ow_in_hi &&
              ow_in_hi - 8 * d >= std::max(a, ow_in_lo)) {
            ow = ow_in_hi - 8 * d;
            left = 8 * d;
          }
          if (p.stride_w == 1 && d > 1 && left < 4 * d && left >= 2 * d) {
            // A dilated kernel's interior too narrow for blocks of 4 pixels in each of the d
            // column classes (pixels d apart): each class slides on its own, in blocks of 4, 3,
            // 2 or 1 pixels (ASPP d6 at 33 wide: 21 interior pixels, classes of 3 and 4).
            const int64_t stop = ow + left;
            for (int64_t r = 0; r < d; ++r) {
              for (int64_t q = ow + r; q < stop;) {
                const int64_t m = ceil_div(stop - q, d);  // pixels left in the class
                const int pb = static_cast<int>(std::min<int64_t>(m, 4));
                with_pixels(pb, [&](auto PB) {
                  for (const Run& rn : runs) {
                    with_width<acc_t>(rn.width, [&](auto WC) {
                      with_kernel_width(p.kernel_w, [&](auto KC) {
                        chunk_pixels_s1<decltype(PB)::value, decltype(WC)::value, decltype(KC)::value>(
                            orow + q * Co, b.data(), wblocked.data(), xrow.data(), rn, kh_of.data(),
                            n_rows, q - p.pad_w, p);
                      });
                    });
                  }
                });
                q += pb * d;
              }
            }
            ow = stop;
            continue;
          }
          const bool slide = p.stride_w == 1 && left >= 4 * d;
          const int pb = slide ? (left >= 8 * d ? 8 : 4) : pixel_block(left);
          const int64_t col = ow * p.stride_w - p.pad_w;
          with_pixels(pb, [&](auto PB) {
            constexpr int PN = decltype(PB)::value;
            for (const Run& rn : runs) {
              with_width<acc_t>(rn.width, [&](auto WC) {
                constexpr int WN = decltype(WC)::value;
                if constexpr (PN >= 4) {
                  if (slide) {
                    with_kernel_width(p.kernel_w, [&](auto KC) {
                      for (int64_t r = 0; r < d; ++r)
                        chunk_pixels_s1<PN, WN, decltype(KC)::value>(
                            orow + (ow + r) * Co, b.data(), wblocked.data(), xrow.data(), rn,
                            kh_of.data(), n_rows, col + r, p);
                    });
                    return;
                  }
                }
                chunk_pixels<PN, WN>(orow + ow * Co, b.data(), wblocked.data(), xrow.data(), rn,
                                     kh_of.data(), n_rows, col, p, 0, p.kernel_w);
              });
            }
          });
          ow += slide ? pb * d : pb;
          continue;
        }
        // Border pixels: their valid taps only, in blocks of up to 8 consecutive pixels whose
        // valid taps are the same (a dilated kernel's border is many pixels wide).
        int64_t kw_lo, kw_hi;
        valid_taps(ow, p.stride_w, p.pad_w, p.dil_w, p.kernel_w, p.in_w, &kw_lo, &kw_hi);
        int64_t same = 1;
        for (; same < 8 && ow + same < e; ++same) {
          const int64_t q = ow + same;
          if (q >= ow_in_lo && q < ow_in_hi) break;
          int64_t lo, hi;
          valid_taps(q, p.stride_w, p.pad_w, p.dil_w, p.kernel_w, p.in_w, &lo, &hi);
          if (lo != kw_lo || hi != kw_hi) break;
        }
        const int pb = pixel_block(same);
        with_pixels(pb, [&](auto PB) {
          for (const Run& rn : runs) {
            with_width<acc_t>(rn.width, [&](auto WC) {
              chunk_pixels<decltype(PB)::value, decltype(WC)::value>(
                  orow + ow * Co, b.data(), wblocked.data(), xrow.data(), rn, kh_of.data(),
                  n_rows, ow * p.stride_w - p.pad_w, p, kw_lo, kw_hi);
            });
          }
        });
        ow += pb;
      }
    };
    // Whether output row oh reads all kH kernel rows (unit stride and dilation along H).
    auto full = [&](int64_t oh) { return oh >= p.pad_h && oh - p.pad_h + kH <= p.in_h; };
    for (int64_t oh = oh0; oh < oh1;) {
      if (pairs && oh + 1 < oh1 && full(oh) && full(oh + 1)) {
        for (int64_t r = 0; r <= kH; ++r) xrow[r] = row_ptr(oh - p.pad_h + r);
        // The sliding blocks of the interior pixels for both rows at once.
        const int64_t d = p.dil_w;
        int64_t ow = ow_in_lo;
        while (ow_in_hi - ow >= 4 * d) {
          const int pb = ow_in_hi - ow >= 8 * d ? 8 : 4;
          with_pixels(pb, [&](auto PB) {
            constexpr int PN = decltype(PB)::value;
            if constexpr (PN >= 4) {  // pb is 8 or 4 here
              for (const Run& rn : runs) {
                with_width<acc_t>(rn.width, [&](auto WC) {
                  with_kernel_width(p.kernel_w, [&](auto KC) {
                    for (int64_t r = 0; r < d; ++r)
                      chunk_pixels_s1_pair<PN, decltype(WC)::value, decltype(KC)::value>(
                          out_row(oh) + (ow + r) * Co, out_row(oh + 1) + (ow + r) * Co,
                          b.data(), wblocked.data(), xrow.data(), rn, ow + r - p.pad_w, p);
                  });
                });
              }
            }
          });
          ow += pb * d;
        }
        // The other pixels row by row.
        for (int64_t o = oh; o < oh + 2; ++o) {
          const int64_t n_rows = set_rows(o);
          row_pixels(o, n_rows, 0, ow_in_lo);
          row_pixels(o, n_rows, ow, p.out_w);
        }
        oh += 2;
        continue;
      }
      row_pixels(oh, set_rows(oh), 0, p.out_w);
      ++oh;
    }
  };
  drive(compute_rows);
}

template <typename scalar_t>
void forward_nhwc(const DepthwiseParams& p, const scalar_t* in, const scalar_t* weight,
                  const scalar_t* bias, scalar_t* out) {
  forward_nhwc_with(p, in, weight, bias, out, [&](auto& compute_rows) {
    const int64_t rblocks = split_rows(p.batch, p.out_h);
    const int64_t rows_per = ceil_div(p.out_h, rblocks);
    at::parallel_for(0, p.batch * rblocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t oh0 = (task % rblocks) * rows_per;
        compute_rows(task / rblocks, oh0, std::min(p.out_h, oh0 + rows_per));
      }
    });
  });
}

template <typename scalar_t>
void backward_input_nhwc(const DepthwiseParams& p, const scalar_t* go, const scalar_t* weight,
                         scalar_t* gi) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t C = p.channels, Co = p.out_channels, m = p.mult, taps = p.kernel_h * p.kernel_w;
  const auto wt = transposed_weight<acc_t>(weight, Co, taps);
  const std::vector<acc_t> zeros(C, acc_t(0));
  constexpr bool kConvert = !std::is_same_v<scalar_t, acc_t>;
  at::parallel_for(0, p.batch * p.in_h, 1, [&](int64_t begin, int64_t end) {
    std::vector<ChannelTerm<acc_t>> terms(taps);
    std::vector<acc_t> gbuf;  // grad_output rows as acc_t, when converting
    std::vector<acc_t> acc(m > 1 ? C : 0);
    std::vector<int64_t> ohv, khv;
    std::vector<const acc_t*> growv;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / p.in_h, ih = task % p.in_h;
      // grad_output rows this input row receives from, converted once per task if needed.
      ohv.clear();
      khv.clear();
      for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
        const int64_t q = ih + p.pad_h - kh * p.dil_h;
        if (q < 0 || q % p.stride_h != 0 || q / p.stride_h >= p.out_h) continue;
        ohv.push_back(q / p.stride_h);
        khv.push_back(kh);
      }
      const int64_t nrows = static_cast<int64_t>(ohv.size());
      growv.resize(nrows);
      for (int64_t r = 0; r < nrows; ++r) {
        const scalar_t* src = go + (n * p.out_h + ohv[r]) * p.out_w * Co;
        if constexpr (kConvert) {
          gbuf.resize(nrows * p.out_w * Co);
          acc_t* dst = gbuf.data() + r * p.out_w * Co;
          for (int64_t i = 0; i < p.out_w * Co; ++i) dst[i] = static_cast<acc_t>(src[i]);
          growv[r] = dst;
        } else {
          growv[r] = src;
        }
      }
      for (int64_t iw = 0; iw < p.in_w; ++iw) {
        scalar_t* o = gi + (task * p.in_w + iw) * C;
        int64_t ne = 0;
        for (int64_t r = 0; r < nrows; ++r) {
          for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
            const int64_t q = iw + p.pad_w - kw * p.dil_w;
            if (q < 0 || q % p.stride_w != 0 || q / p.stride_w >= p.out_w) continue;
            terms[ne++] = {growv[r] + (q / p.stride_w) * Co,
                           wt.data() + (khv[r] * p.kernel_w + kw) * Co};
          }
        }
        if (m == 1) {
          channel_blocks(o, zeros.data(), C, terms.data(), ne);
        } else {
          std::fill(acc.begin(), acc.end(), acc_t(0));
          for (int64_t e = 0; e < ne; ++e) {
            const acc_t* x = terms[e].x;
            const acc_t* w = terms[e].w;
            for (int64_t c = 0; c < C; ++c) {
              acc_t s = 0;
              for (int64_t j = 0; j < m; ++j) s += x[c * m + j] * w[c * m + j];
              acc[c] += s;
            }
          }
          for (int64_t c = 0; c < C; ++c) o[c] = static_cast<scalar_t>(acc[c]);
        }
      }
    }
  });
}

// dst[i] += sum_{j < n} g[j * gstep + i] * x[j * xstep + i], for K vectors of channels i.
template <int K, typename acc_t>
inline void accumulate_products(acc_t* dst, const acc_t* g, const acc_t* x, int64_t n,
                                int64_t gstep, int64_t xstep) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  V a[K];
  for (int k = 0; k < K; ++k) a[k] = S::broadcast(0);
  for (int64_t j = 0; j < n; ++j)
    for (int k = 0; k < K; ++k)
      a[k] += S::load(g + j * gstep + k * L) * S::load(x + j * xstep + k * L);
  for (int k = 0; k < K; ++k) S::store(dst + k * L, S::load(dst + k * L) + a[k]);
}

// For unit stride and dilation along W, KW taps of one kernel row at once, one channel vector:
// dst[kw * Co] += sum_{i < n} g[i * Co] * x[(i + kw) * Co] for kw < KW. Each input column is loaded
// once and kept in a ring of KW registers (column c in slot c % KW; unrolling KW pixels keeps
// every slot index a constant) for the KW taps that read it: two loads per pixel instead of 2 * KW.
template <int KW, typename acc_t>
inline void accumulate_row_taps(acc_t* dst, int64_t Co, const acc_t* g, const acc_t* x, int64_t n) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  V acc[KW], xs[KW];
  for (int kw = 0; kw < KW; ++kw) acc[kw] = S::broadcast(0);
  for (int c = 0; c + 1 < KW; ++c) xs[c] = S::load(x + c * Co);
  int64_t i = 0;
  for (; i + KW <= n; i += KW) {
#pragma GCC unroll 8
    for (int u = 0; u < KW; ++u) {
      xs[(u + KW - 1) % KW] = S::load(x + (i + u + KW - 1) * Co);
      const V gv = S::load(g + (i + u) * Co);
#pragma GCC unroll 8
      for (int kw = 0; kw < KW; ++kw) acc[kw] += gv * xs[(u + kw) % KW];
    }
  }
  for (; i < n; ++i) {
    const V gv = S::load(g + i * Co);
    for (int kw = 0; kw < KW; ++kw) acc[kw] += gv * S::load(x + (i + kw) * Co);
  }
  for (int kw = 0; kw < KW; ++kw) S::store(dst + kw * Co, S::load(dst + kw * Co) + acc[kw]);
}

// NHWC: the bias sums of all channels, each group's rows fed in order by one task (the weight
// gradient's row chunks are whole groups), with a [L][Co] scratch of lanes per task.
template <typename acc_t>
struct BiasGroups {
  static constexpr int L = Simd<acc_t>::kLanes;
  int64_t group, rows, Co;
  std::vector<acc_t> sums;  // [groups][Co]
  BiasGroups(int64_t rows_, int64_t Co_)
      : group(bias_group_rows(rows_, Co_)), rows(rows_), Co(Co_),
        sums(ceil_div(rows_, group) * Co_, acc_t(0)) {}
  // Row r (g: its n pixels, Co apart) into the lanes; a finished group into its sums.
  void add_row(std::vector<acc_t>& lanes, int64_t r, const acc_t* __restrict g, int64_t n) {
    using S = Simd<acc_t>;
    if (r % group == 0) lanes.assign(L * Co, acc_t(0));
    const int64_t cv = Co / L * L;
    for (int64_t i = 0; i < n; ++i) {
      acc_t* __restrict l = lanes.data() + (i % L) * Co;
      const acc_t* x = g + i * Co;
      for (int64_t c = 0; c < cv; c += L) S::store(l + c, S::load(l + c) + S::load(x + c));
      for (int64_t c = cv; c < Co; ++c) l[c] += x[c];
    }
    if ((r + 1) % group == 0 || r + 1 == rows) {
      acc_t* __restrict dst = sums.data() + r / group * Co;
      for (int64_t c = 0; c < cv; c += L) {
        auto s = S::broadcast(0);
        for (int j = 0; j < L; ++j) s += S::load(lanes.data() + j * Co + c);
        S::store(dst + c, s);
      }
      for (int64_t c = cv; c < Co; ++c) {
        acc_t s = 0;
        for (int j = 0; j < L; ++j) s += lanes[j * Co + c];
        dst[c] = s;
      }
    }
  }
  template <typename scalar_t>
  void finish(scalar_t* gb) const {
    const int64_t groups = ceil_div(rows, group);
    for (int64_t co = 0; co < Co; ++co) {
      acc_t s = 0;
      for (int64_t g = 0; g < groups; ++g) s += sums[g * Co + co];
      gb[co] = static_cast<scalar_t>(s);
    }
  }
};

// Per-task buffers of the channels_last weight gradient: kept across the calls that add one
// chunk's rows (a bias group's lanes carry over from row to row).
template <typename scalar_t>
struct WeightRowsScratch {
  using acc_t = acc_type_t<scalar_t>;
  PixelRows<scalar_t, acc_t> xrows;
  std::vector<acc_t> gbuf, bias_lanes;
  explicit WeightRowsScratch(const DepthwiseParams& p)
      : xrows(p), gbuf(std::is_same_v<scalar_t, acc_t> ? 0 : p.out_w * p.out_channels) {}
};

// The channels_last weight gradient, and with gb the bias gradient (each grad_output row summed
// while it is in cache for the weight gradient; see BiasGroups): the set-up, then
// drive(chunks, rows_per, add_rows), where add_rows(ch, r0, r1, scratch) adds grad_output rows
// [r0, r1) (of the rows n * out_h + oh) of chunk ch, [ch * rows_per, (ch + 1) * rows_per); each
// chunk's rows must be added in order, by one task; then the chunks' partial sums are reduced.
template <typename scalar_t, typename Drive>
void backward_weight_nhwc_with(const DepthwiseParams& p, const scalar_t* go, const scalar_t* in,
                               scalar_t* gw, scalar_t* gb, Drive&& drive) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t Co = p.out_channels;
  const int64_t taps = p.kernel_h * p.kernel_w;
  const int64_t rows = p.batch * p.out_h;
  // A fixed number of row chunks (a function of the shape only, so the summation order never
  // depends on the thread count), each with its own [taps][Co] partial sums, reduced in order.
  const int64_t budget = int64_t(1) << 22;  // partial-sum elements
  const int64_t chunks_wanted = std::max<int64_t>(
      1, std::min<int64_t>({rows, 16, budget / std::max<int64_t>(taps * Co, 1)}));
  // Chunks of whole bias groups (whether or not gb is asked for, so that the weight gradient's
  // summation order is the same either way).
  const int64_t group = bias_group_rows(rows, Co);
  const int64_t rows_per = ceil_div(ceil_div(rows, chunks_wanted), group) * group;
  const int64_t chunks = ceil_div(rows, rows_per);
  std::vector<acc_t> part(chunks * taps * Co, acc_t(0));
  std::optional<BiasGroups<acc_t>> bias;
  if (gb) bias.emplace(rows, Co);
  constexpr bool kConvert = !std::is_same_v<scalar_t, acc_t>;
  const bool row_taps = p.stride_w == 1 && p.dil_w == 1 &&
                        (p.kernel_w == 3 || p.kernel_w == 5 || p.kernel_w == 7);
  const int64_t n_vec = Co / Simd<acc_t>::kLanes * Simd<acc_t>::kLanes;
  auto add_rows = [&](int64_t ch, int64_t r0, int64_t r1, WeightRowsScratch<scalar_t>& scratch) {
    PixelRows<scalar_t, acc_t>& xrows = scratch.xrows;
    std::vector<acc_t>& gbuf = scratch.gbuf;
    std::vector<acc_t>& bias_lanes = scratch.bias_lanes;
    acc_t* pc = part.data() + ch * taps * Co;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / p.out_h, oh = r % p.out_h;
      const acc_t* grow;
      if constexpr (kConvert) {
        const scalar_t* src = go + r * p.out_w * Co;
        for (int64_t i = 0; i < p.out_w * Co; ++i) gbuf[i] = static_cast<acc_t>(src[i]);
        grow = gbuf.data();
      } else {
        grow = go + r * p.out_w * Co;
      }
      if (bias) bias->add_row(bias_lanes, r, grow, p.out_w);
      int64_t kh_lo, kh_hi;
      valid_taps(oh, p.stride_h, p.pad_h, p.dil_h, p.kernel_h, p.in_h, &kh_lo, &kh_hi);
      for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {
        const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
        xrows.load(in + n * p.in_h * p.in_w * p.channels, ih, ih + 1);
        // Output pixels [mid_lo, mid_hi) have all kW taps inside the row: with unit stride and
        // dilation and kW of 3, 5 or 7, their vector channels go through accumulate_row_taps.
        int64_t mid_lo = 0, mid_hi = 0, unused;
        const bool rowwise = row_taps && n_vec > 0;
        if (rowwise) {
          valid_out_range(-p.pad_w, 1, p.in_w, p.out_w, &mid_lo, &unused);
          valid_out_range(p.kernel_w - 1 - p.pad_w, 1, p.in_w, p.out_w, &unused, &mid_hi);
          if (mid_hi < mid_lo) mid_hi = mid_lo;
          acc_t* dst = pc + kh * p.kernel_w * Co;
          const acc_t* g0 = grow + mid_lo * Co;
          const acc_t* x0 = xrows.pixel(ih, mid_lo - p.pad_w);
          for (int64_t cb = 0; cb < n_vec; cb += Simd<acc_t>::kLanes) {
            if (p.kernel_w == 3) {
              accumulate_row_taps<3>(dst + cb, Co, g0 + cb, x0 + cb, mid_hi - mid_lo);
            } else if (p.kernel_w == 5) {
              accumulate_row_taps<5>(dst + cb, Co, g0 + cb, x0 + cb, mid_hi - mid_lo);
            } else {
              accumulate_row_taps<7>(dst + cb, Co, g0 + cb, x0 + cb, mid_hi - mid_lo);
            }
          }
        }
        for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
          const int64_t off = kw * p.dil_w - p.pad_w;
          int64_t lo, hi;
          valid_out_range(off, p.stride_w, p.in_w, p.out_w, &lo, &hi);
          acc_t* dst = pc + (kh * p.kernel_w + kw) * Co;
          // Pixels [a, b) of channels [c0, c1): pixel j reads g at j * Co and x at xrow(j).
          auto per_tap = [&](int64_t a, int64_t b, int64_t c0, int64_t c1) {
            if (a >= b) return;
            constexpr int L = Simd<acc_t>::kLanes;
            constexpr int64_t B = kCB<acc_t>;
            const acc_t* g0 = grow + a * Co;
            const acc_t* x0 = xrows.pixel(ih, a * p.stride_w + off);
            const int64_t xstep = p.stride_w * Co, count = b - a;
            int64_t cb = c0;
            for (; cb + B <= c1; cb += B)
              accumulate_products<B / L>(dst + cb, g0 + cb, x0 + cb, count, Co, xstep);
            for (; cb + L <= c1; cb += L)
              accumulate_products<1>(dst + cb, g0 + cb, x0 + cb, count, Co, xstep);
            for (; cb < c1; ++cb)
              for (int64_t i = 0; i < count; ++i) dst[cb] += g0[i * Co + cb] * x0[i * xstep + cb];
          };
          if (rowwise) {  // the vector channels of the border pixels, then the last channels
            per_tap(lo, std::min(hi, mid_lo), 0, n_vec);
            per_tap(std::max(lo, mid_hi), hi, 0, n_vec);
            per_tap(lo, hi, n_vec, Co);
          } else {
            per_tap(lo, hi, 0, Co);
          }
        }
      }
    }
  };
  drive(chunks, rows_per, add_rows);
  for (int64_t co = 0; co < Co; ++co) {
    for (int64_t t = 0; t < taps; ++t) {
      acc_t s = 0;
      for (int64_t ch = 0; ch < chunks; ++ch) s += part[(ch * taps + t) * Co + co];
      gw[co * taps + t] = static_cast<scalar_t>(s);
    }
  }
  if (bias) bias->finish(gb);
}

template <typename scalar_t>
void backward_weight_nhwc(const DepthwiseParams& p, const scalar_t* go, const scalar_t* in,
                          scalar_t* gw, scalar_t* gb) {
  const int64_t rows = p.batch * p.out_h;
  backward_weight_nhwc_with(p, go, in, gw, gb, [&](int64_t chunks, int64_t rows_per, auto& add_rows) {
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      WeightRowsScratch<scalar_t> scratch(p);
      for (int64_t ch = begin; ch < end; ++ch)
        add_rows(ch, ch * rows_per, std::min(rows, (ch + 1) * rows_per), scratch);
    });
  });
}

// grad_input and the weight (and bias) gradients of channels_last tensors in one pass over
// grad_output, for the strides where grad_input is the forward with the flipped kernel (q: the
// op's geometry, t: the flipped forward's, from flipped_forward_params): each task takes the weight
// gradient's chunks, 8 grad_output rows at a time, and after each group of rows the grad_input
// rows that correspond (their share of the image rows), while those grad_output rows are still in
// cache. Results are bit for bit those of the separate kernels.
template <typename scalar_t>
void backward_input_weight_nhwc(const DepthwiseParams& q, const DepthwiseParams& t,
                                const scalar_t* go, const scalar_t* in,
                                const scalar_t* flipped_weight, scalar_t* gi, scalar_t* gw,
                                scalar_t* gb) {
  const int64_t rows = q.batch * q.out_h;      // grad_output rows
  const int64_t gi_rows = t.batch * t.out_h;   // grad_input rows
  constexpr int64_t kStep = 8;
  backward_weight_nhwc_with(q, go, in, gw, gb, [&](int64_t chunks, int64_t rows_per, auto& add_rows) {
    forward_nhwc_with(t, go, flipped_weight, static_cast<const scalar_t*>(nullptr), gi,
                      [&](auto& compute_rows) {
      // grad_input rows [g0, g1) of the rows n * in_h + ih, image by image.
      auto gi_span = [&](int64_t g0, int64_t g1) {
        while (g0 < g1) {
          const int64_t n = g0 / t.out_h, ih0 = g0 % t.out_h;
          const int64_t ih1 = std::min(t.out_h, ih0 + (g1 - g0));
          compute_rows(n, ih0, ih1);
          g0 += ih1 - ih0;
        }
      };
      at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
        WeightRowsScratch<scalar_t> scratch(q);
        for (int64_t ch = begin; ch < end; ++ch) {
          const int64_t r1 = std::min(rows, (ch + 1) * rows_per);
          for (int64_t r = ch * rows_per; r < r1; r += kStep) {
            const int64_t re = std::min(r1, r + kStep);
            add_rows(ch, r, re, scratch);
            gi_span(r * gi_rows / rows, re * gi_rows / rows);
          }
        }
      });
    });
  });
}

// grad_bias of channels_last grad_output (see bias_group_rows).
template <typename scalar_t>
void backward_bias_nhwc(const DepthwiseParams& p, const scalar_t* go, scalar_t* gb) {
  using acc_t = acc_type_t<scalar_t>;
  constexpr bool kConvert = !std::is_same_v<scalar_t, acc_t>;
  const int64_t Co = p.out_channels, rows = p.batch * p.out_h, row_len = p.out_w * Co;
  BiasGroups<acc_t> bias(rows, Co);
  at::parallel_for(0, ceil_div(rows, bias.group), 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> gbuf(kConvert ? row_len : 0), lanes;
    for (int64_t r = begin * bias.group; r < std::min(rows, end * bias.group); ++r) {
      const scalar_t* src = go + r * row_len;
      if constexpr (kConvert) {
        for (int64_t i = 0; i < row_len; ++i) gbuf[i] = static_cast<acc_t>(src[i]);
        bias.add_row(lanes, r, gbuf.data(), p.out_w);
      } else {
        bias.add_row(lanes, r, src, p.out_w);
      }
    }
  });
  bias.finish(gb);
}

// grad_bias of NCHW grad_output, per channel (see bias_group_rows).
template <typename scalar_t>
void backward_bias_nchw(const DepthwiseParams& p, const scalar_t* go, scalar_t* gb) {
  using acc_t = acc_type_t<scalar_t>;
  at::parallel_for(0, p.out_channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t co = begin; co < end; ++co) {
      ChannelBiasSum<acc_t> sum(p.batch * p.out_h, p.out_channels);
      for (int64_t n = 0; n < p.batch; ++n) {
        const scalar_t* g = go + (n * p.out_channels + co) * p.out_h * p.out_w;
        for (int64_t oh = 0; oh < p.out_h; ++oh) sum.add_row(n * p.out_h + oh, g + oh * p.out_w, p.out_w);
      }
      gb[co] = static_cast<scalar_t>(sum.total);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Op entry points
// ---------------------------------------------------------------------------------------------

at::Tensor depthwise_conv2d_cpu(const at::Tensor& input, const at::Tensor& weight,
                                const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation) {
  auto s = setup_depthwise_forward(input, weight, bias, stride, padding, dilation);
  if (s.output.numel() == 0) return s.output;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "atrous_dw_fwd",
                                  [&] {
    const scalar_t* b = s.bias.defined() ? s.bias.const_data_ptr<scalar_t>() : nullptr;
    auto* f = s.p.layout == Layout::kNHWC ? &forward_nhwc<scalar_t> : &forward_nchw<scalar_t>;
    f(s.p, s.input.const_data_ptr<scalar_t>(), s.weight.const_data_ptr<scalar_t>(), b,
      s.output.mutable_data_ptr<scalar_t>());
  });
  return s.output;
}

at::Tensor depthwise_conv2d_backward_input_cpu(const at::Tensor& grad_output,
                                               const at::Tensor& weight,
                                               at::IntArrayRef input_size, at::IntArrayRef stride,
                                               at::IntArrayRef padding, at::IntArrayRef dilation) {
  auto s = setup_depthwise_backward_input(grad_output, weight, input_size, stride, padding,
                                          dilation);
  if (s.grad_input.numel() == 0) return s.grad_input;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(),
                                  "atrous_dw_bwd_input", [&] {
    const DepthwiseParams& q = s.p;
    DepthwiseParams t;
    if (flipped_forward_params(q, &t)) {  // unit stride: the forward with the flipped kernel
      const at::Tensor flipped = s.weight.flip({2, 3}).contiguous();
      auto* fwd = q.layout == Layout::kNHWC ? &forward_nhwc<scalar_t> : &forward_nchw<scalar_t>;
      fwd(t, s.grad_output.const_data_ptr<scalar_t>(), flipped.const_data_ptr<scalar_t>(), nullptr,
          s.grad_input.mutable_data_ptr<scalar_t>());
      return;
    }
    auto* f = q.layout == Layout::kNHWC ? &backward_input_nhwc<scalar_t>
                                        : &backward_input_nchw<scalar_t>;
    f(q, s.grad_output.const_data_ptr<scalar_t>(), s.weight.const_data_ptr<scalar_t>(),
      s.grad_input.mutable_data_ptr<scalar_t>());
  });
  return s.grad_input;
}

// The weight gradient into s.grad_weight, and the bias gradient into grad_bias when it is defined.
void run_backward_weight(const DepthwiseBackwardWeightSetup& s, const at::Tensor& grad_bias) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, s.input.scalar_type(),
                                  "atrous_dw_bwd_weight", [&] {
    auto* f = s.p.layout == Layout::kNHWC ? &backward_weight_nhwc<scalar_t>
                                          : &backward_weight_nchw<scalar_t>;
    f(s.p, s.grad_output.const_data_ptr<scalar_t>(), s.input.const_data_ptr<scalar_t>(),
      s.grad_weight.mutable_data_ptr<scalar_t>(),
      grad_bias.defined() ? grad_bias.mutable_data_ptr<scalar_t>() : nullptr);
  });
}

at::Tensor depthwise_conv2d_backward_weight_cpu(const at::Tensor& grad_output,
                                                const at::Tensor& input,
                                                at::IntArrayRef weight_size,
                                                at::IntArrayRef stride, at::IntArrayRef padding,
                                                at::IntArrayRef dilation) {
  auto s = setup_depthwise_backward_weight(grad_output, input, weight_size, stride, padding,
                                           dilation);
  if (s.p.batch == 0) return s.grad_weight.zero_();
  run_backward_weight(s, at::Tensor());
  return s.grad_weight;
}

// The weight and bias gradients in one pass over grad_output.
std::tuple<at::Tensor, at::Tensor> depthwise_conv2d_backward_weight_bias_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, at::IntArrayRef weight_size,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  auto s = setup_depthwise_backward_weight(grad_output, input, weight_size, stride, padding,
                                           dilation);
  at::Tensor grad_bias = at::empty({s.p.out_channels}, input.options());
  if (s.p.batch == 0) return {s.grad_weight.zero_(), grad_bias.zero_()};
  run_backward_weight(s, grad_bias);
  return {s.grad_weight, grad_bias};
}

// grad_input, grad_weight and (with `bias`; else an empty tensor) grad_bias: in one pass over
// channels_last tensors where grad_input is the flipped forward, else from the separate kernels.
std::tuple<at::Tensor, at::Tensor, at::Tensor> depthwise_conv2d_backward_input_weight_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, bool bias) {
  // Whether the one pass applies, decided before the set-ups allocate anything (a grad_input
  // allocated and dropped here made the fallback 4x slower through fresh pages).
  DepthwiseParams t;
  const bool fused = layout_of(grad_output) == Layout::kNHWC && layout_of(input) == Layout::kNHWC &&
                     input.dim() == 4 && weight.dim() == 4 && input.numel() > 0 &&
                     flipped_forward_params(make_depthwise_params(input.sizes(), weight.sizes(),
                                                                  stride, padding, dilation),
                                            &t);
  if (!fused) {
    at::Tensor gi = depthwise_conv2d_backward_input_cpu(grad_output, weight, input.sizes(), stride,
                                                        padding, dilation);
    if (!bias) {
      return {gi, depthwise_conv2d_backward_weight_cpu(grad_output, input, weight.sizes(), stride,
                                                       padding, dilation),
              at::empty({0}, input.options())};
    }
    auto [gw, gb] = depthwise_conv2d_backward_weight_bias_cpu(grad_output, input, weight.sizes(),
                                                              stride, padding, dilation);
    return {gi, gw, gb};
  }
  auto si = setup_depthwise_backward_input(grad_output, weight, input.sizes(), stride, padding,
                                           dilation);
  auto sw = setup_depthwise_backward_weight(grad_output, input, weight.sizes(), stride, padding,
                                            dilation);
  at::Tensor grad_bias = at::empty({bias ? sw.p.out_channels : 0}, input.options());
  const at::Tensor flipped = si.weight.flip({2, 3}).contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                                  "atrous_dw_bwd_input_weight", [&] {
    backward_input_weight_nhwc<scalar_t>(
        sw.p, t, sw.grad_output.const_data_ptr<scalar_t>(), sw.input.const_data_ptr<scalar_t>(),
        flipped.const_data_ptr<scalar_t>(), si.grad_input.mutable_data_ptr<scalar_t>(),
        sw.grad_weight.mutable_data_ptr<scalar_t>(),
        bias ? grad_bias.mutable_data_ptr<scalar_t>() : nullptr);
  });
  return {si.grad_input, sw.grad_weight, grad_bias};
}

at::Tensor depthwise_conv2d_backward_bias_cpu(const at::Tensor& grad_output) {
  auto s = setup_depthwise_backward_bias(grad_output);
  if (s.p.batch * s.p.out_h * s.p.out_w == 0) return s.grad_bias.zero_();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(),
                                  "atrous_dw_bwd_bias", [&] {
    auto* f = s.p.layout == Layout::kNHWC ? &backward_bias_nhwc<scalar_t>
                                          : &backward_bias_nchw<scalar_t>;
    f(s.p, s.grad_output.const_data_ptr<scalar_t>(), s.grad_bias.mutable_data_ptr<scalar_t>());
  });
  return s.grad_bias;
}

}  // namespace

TORCH_LIBRARY_IMPL(atrous, CPU, m) {
  m.impl("depthwise_conv2d", &depthwise_conv2d_cpu);
  m.impl("depthwise_conv2d_backward_bias", &depthwise_conv2d_backward_bias_cpu);
  m.impl("depthwise_conv2d_backward_input", &depthwise_conv2d_backward_input_cpu);
  m.impl("depthwise_conv2d_backward_weight", &depthwise_conv2d_backward_weight_cpu);
  m.impl("depthwise_conv2d_backward_weight_bias", &depthwise_conv2d_backward_weight_bias_cpu);
  m.impl("depthwise_conv2d_backward_input_weight", &depthwise_conv2d_backward_input_weight_cpu);
}

}  // namespace atrous

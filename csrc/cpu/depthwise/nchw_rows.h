// NCHW prepared rows: each task first "prepares" the source rows it needs, in the accumulation
// type (float for the half types), so that for every tap kw the values a row of results needs are
// contiguous and zero where they fall in the padding (see TapRows). The inner loops then keep a
// block of B results in registers across all taps of the window: branch-free, unit-stride and
// vectorised.
#pragma once

#include "../kernel_namespace.h"

#include "common.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

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
  Buffer<int64_t> offset;
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

// dst[j] = src[j] for j in [0, n), in the accumulation type: whole vectors, then one masked
// vector (inline: for rows of a few vectors, calls to memmove and fill cost more than the copy:
// 20-25% of a weight gradient or a forward sweep on rows of 28-80 values). What lies around
// dst[0, n) is not touched.
template <typename scalar_t, typename acc_t>
inline void copy_values(acc_t* __restrict dst, const scalar_t* __restrict src, int64_t n) {
  using S = Simd<acc_t>;
  using C = Cast<scalar_t, acc_t>;
  constexpr int L = S::kLanes;
  int64_t j = 0;
  // (in_register keeps the compiler from turning the loop back into a call to memmove)
  for (; j + L <= n; j += L) S::store(dst + j, S::in_register(C::load(src + j)));
  if (j < n) S::store_first(dst + j, C::load_first(src + j, n - j), n - j);
}

// dst[j] = 0 for j in [0, n), as copy_values stores (not a call to memset).
template <typename acc_t>
inline void zero_values(acc_t* __restrict dst, int64_t n) {
  using S = Simd<acc_t>;
  constexpr int L = S::kLanes;
  int64_t j = 0;
  for (; j + L <= n; j += L) S::store(dst + j, S::in_register(typename S::vec{}));
  if (j < n) S::store_first(dst + j, typename S::vec{}, n - j);
}

// dst[j] = src[j - shift] for j in [0, len), zero where that falls outside [0, n).
template <typename scalar_t, typename acc_t>
inline void shifted_copy(acc_t* __restrict dst, int64_t len, const scalar_t* __restrict src, int64_t n,
                         int64_t shift) {
  const int64_t lo = std::clamp<int64_t>(shift, 0, len);
  const int64_t hi = std::clamp<int64_t>(n + shift, lo, len);
  zero_values(dst, lo);
  copy_values(dst + lo, src + (lo - shift), hi - lo);
  zero_values(dst + hi, len - hi);
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

// The two phases of a row at stride 2, in one pass over it: dst[i] = x[2i - p] and
// dst[len + i] = x[2i + 1 - p] for i in [0, len), zero where that falls outside [0, W). From the
// first i whose columns lie at or past column 0, L values of each phase come from one pair of
// vectors (even and odd lanes); past the row's end the loads are masked, so that the lanes beyond
// it, and the phases' padding after it, are zeros. The one or two columns before column 0 go one
// by one. (Two strided_copy calls read the row twice, each with its divisions and its calls to
// fill the borders: the NCHW stride-2 sweep of a MobileNet layer spent more time there than in
// its products.)
template <typename scalar_t, typename acc_t>
void two_phase_copy(acc_t* __restrict dst, int64_t len, const scalar_t* __restrict x, int64_t W, int64_t p) {
  acc_t* __restrict odd = dst + len;
  int64_t i = 0;
  auto one_by_one = [&](int64_t end) {
    auto at = [&](int64_t j) { return j >= 0 && j < W ? static_cast<acc_t>(x[j]) : acc_t(0); };
    for (; i < end; ++i) {
      dst[i] = at(2 * i - p);
      odd[i] = at(2 * i + 1 - p);
    }
  };
  one_by_one(std::min(len, (p + 1) / 2));  // to the first i with 2i - p >= 0
#ifdef ATROUS_HAVE_SHUFFLEVECTOR  // simd.h
  using S = Simd<acc_t>;
  using C = Cast<scalar_t, acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  for (; i < len; i += L) {
    const int64_t start = 2 * i - p, n = std::clamp<int64_t>(W - start, 0, 2 * L);  // values in the row
    V a{}, b{};
    if (n >= 2 * L) {
      a = C::load(x + start);
      b = C::load(x + start + L);
    } else if (n >= L) {
      a = C::load(x + start);
      if (n > L) b = C::load_first(x + start + L, n - L);
    } else if (n > 0) {
      a = C::load_first(x + start, n);
    }
    if (i + L <= len) {
      S::store(dst + i, even_lanes<V, L>(a, b));
      S::store(odd + i, odd_lanes<V, L>(a, b));
    } else {
      S::store_first(dst + i, even_lanes<V, L>(a, b), len - i);
      S::store_first(odd + i, odd_lanes<V, L>(a, b), len - i);
    }
  }
#endif
  one_by_one(len);  // without the vector extension, the rest
}

template <typename scalar_t, typename acc_t>
void prepare_forward_row(const TapRows& t, acc_t* dst, const scalar_t* x, int64_t W, int64_t n_round,
                         int64_t kW, int64_t s, int64_t d, int64_t p) {
  if (t.phases && s == 1) {
    shifted_copy(dst, t.len, x, W, p);
  } else if (t.phases && s == 2) {
    two_phase_copy(dst, t.phase_len, x, W, p);
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

#ifdef ATROUS_HAVE_SHUFFLEVECTOR  // simd.h
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
#ifdef ATROUS_HAVE_SHUFFLEVECTOR
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

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

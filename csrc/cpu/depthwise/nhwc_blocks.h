// channels_last building blocks: the inner loops run over a block of channels, contiguous in
// memory, with the block's sums in registers across the taps; bounds are resolved per pixel,
// outside the channel loops.
#pragma once

#include "../kernel_namespace.h"

#include "common.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

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
  Buffer<acc_t> buf;
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


// The grad_output rows that input row ih of image n receives from, for channels_last grad_input:
// kh gets their kernel rows (ascending), rows the rows as acc_t (out_w pixels of Co channels each):
// pointers into go, or copies converted into `converted`.
template <typename scalar_t, typename acc_t>
void grad_output_rows(const DepthwiseParams& p, const scalar_t* go, int64_t n, int64_t ih, Buffer<int64_t>& kh,
                      Buffer<const acc_t*>& rows, Buffer<acc_t>& converted) {
  const int64_t row_len = p.out_w * p.out_channels;
  kh.clear();
  for (int64_t k = 0; k < p.kernel_h; ++k) {
    const int64_t q = ih + p.pad_h - k * p.dil_h;
    if (q >= 0 && q % p.stride_h == 0 && q / p.stride_h < p.out_h) kh.push_back(k);
  }
  rows.resize(kh.size());
  if constexpr (!std::is_same_v<scalar_t, acc_t>) converted.resize(kh.size() * row_len);
  for (size_t r = 0; r < kh.size(); ++r) {
    const int64_t oh = (ih + p.pad_h - kh[r] * p.dil_h) / p.stride_h;
    const scalar_t* src = go + (n * p.out_h + oh) * row_len;
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      rows[r] = src;
    } else {
      acc_t* dst = converted.data() + r * row_len;
      for (int64_t i = 0; i < row_len; ++i) dst[i] = static_cast<acc_t>(src[i]);
      rows[r] = dst;
    }
  }
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

// Stores P vectors of W channels, the pixels `step` elements apart, converting to scalar_t (full
// vectors with Cast's vector conversions, narrower ones lane by lane; both round to nearest even).
template <int P, typename scalar_t, typename V>
inline void store_pixels(scalar_t* out, int64_t step, const V (&acc)[P]) {
  using acc_t = std::remove_cv_t<std::remove_reference_t<decltype(acc[0][0])>>;
  constexpr int W = sizeof(V) / sizeof(acc_t);
  for (int q = 0; q < P; ++q) {
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      Simd<acc_t, W>::store(out + q * step, acc[q]);
    } else if constexpr (W == Simd<acc_t>::kLanes) {
      Cast<scalar_t, acc_t>::store(out + q * step, acc[q]);
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
Buffer<Run> channel_runs(int64_t Co) {
  constexpr int L = Simd<acc_t>::kLanes;
  Buffer<Run> runs;
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

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

// Channel tiles: the depthwise convolution computed with a vector of L channels in the lanes (L =
// Simd<acc_t>::kLanes), from a tile of pixels x L channels in the accumulation type. The NCHW
// kernels of small planes (nchw_channel_tiles.cpp) transpose L planes into such a tile, compute,
// and transpose the results back; the tile kernels here know nothing of the tensors' layout, so
// that any caller that fills a tile (channels_last rows, a fused op's intermediate) can use them.
//
// A tile is rows x cols pixels, pixel (r, c) at (r * cols + c) * L, lane j one channel; zero
// where the padded input has padding. The outputs a caller wants are given as a list of tile
// offsets, one per output pixel (where its window's first tap reads), so that blocks of pixels run
// on across output rows: narrow rows leave no short, latency-bound blocks at their ends.
#pragma once

#include "../kernel_namespace.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

// The taps of a kernel in a tile: tap t = kh * kW + kw reads offset[t] past an output pixel's
// window start.
struct TileTaps {
  Buffer<int64_t> offset;
  TileTaps(int64_t kernel_h, int64_t kernel_w, int64_t dil_h, int64_t dil_w, int64_t cols, int64_t lanes) {
    for (int64_t kh = 0; kh < kernel_h; ++kh)
      for (int64_t kw = 0; kw < kernel_w; ++kw) offset.push_back((kh * dil_h * cols + kw * dil_w) * lanes);
  }
  int64_t size() const { return static_cast<int64_t>(offset.size()); }
};

// Window starts of the output pixels (r, c) for r in [0, rows), c in [0, out_w), in that order:
// row r of outputs starts at tile row r * stride_h, column c at c * stride_w.
inline void window_starts(Buffer<int64_t>& starts, int64_t rows, int64_t out_w, int64_t stride_h,
                          int64_t stride_w, int64_t cols, int64_t lanes) {
  starts.clear();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < out_w; ++c) starts.push_back((r * stride_h * cols + c * stride_w) * lanes);
}

// The output pixels of a band split by their windows: `full` those whose every tap reads inside
// the input (computed in blocks of pixels), `edge` the others, each with the taps that do (the
// taps in the padding are skipped: on planes of 5-10 pixels a 5x5 or 7x7 window is mostly
// padding). A pixel's results go to out + index * L.
struct BandPixels {
  struct Edge {
    int64_t start, index, kh_lo, kh_hi, kw_lo, kw_hi;
  };
  Buffer<int64_t> full_start, full_index;
  Buffer<Edge> edge;
};

// P output pixels: out[index[q] * L] = bias + sum over taps t of w[t * L] * tile[start[q] +
// offset[t]]. Their sums stay in registers across all taps.
template <int P, typename acc_t>
inline void tile_output_block(acc_t* __restrict out, const acc_t* __restrict tile, const int64_t* start,
                              const int64_t* index, const TileTaps& taps, const acc_t* __restrict w,
                              const acc_t* __restrict bias) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  const acc_t* base[P];
  V acc[P];
  const V b = S::load(bias);
  for (int q = 0; q < P; ++q) {
    base[q] = tile + start[q];
    acc[q] = b;
  }
  const int64_t* off = taps.offset.data();
  const int64_t n = taps.size();
  for (int64_t t = 0; t < n; ++t) {
    const V wv = S::load(w + t * L);
    for (int q = 0; q < P; ++q) acc[q] += wv * S::load(base[q] + off[t]);
  }
  for (int q = 0; q < P; ++q) S::store(out + index[q] * L, acc[q]);
}

// One edge pixel, its valid taps only, in four chains (kernel rows in pairs, each row's columns in
// pairs) added at the end: ((a0 + a1) + (a2 + a3)).
template <typename acc_t>
__attribute__((always_inline)) inline void tile_output_edge(acc_t* __restrict out, const acc_t* __restrict tile, const BandPixels::Edge& e,
                             int64_t kernel_w, int64_t row_step, int64_t col_step, const acc_t* __restrict w,
                             const acc_t* __restrict bias) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  V a0 = S::load(bias), a1 = V{}, a2 = V{}, a3 = V{};
  auto row = [&](int64_t kh, V& c0, V& c1) {
    const acc_t* x = tile + e.start + kh * row_step;
    const acc_t* wk = w + kh * kernel_w * L;
    int64_t kw = e.kw_lo;
    for (; kw + 2 <= e.kw_hi; kw += 2) {
      c0 += S::load(wk + kw * L) * S::load(x + kw * col_step);
      c1 += S::load(wk + (kw + 1) * L) * S::load(x + (kw + 1) * col_step);
    }
    if (kw < e.kw_hi) c0 += S::load(wk + kw * L) * S::load(x + kw * col_step);
  };
  int64_t kh = e.kh_lo;
  for (; kh + 2 <= e.kh_hi; kh += 2) {
    row(kh, a0, a1);
    row(kh + 1, a2, a3);
  }
  if (kh < e.kh_hi) row(kh, a0, a1);
  S::store(out + e.index * L, (a0 + a1) + (a2 + a3));
}

// All the outputs of a band: the full windows in blocks of 8 (the last block whatever is left),
// the edge pixels one by one.
template <typename acc_t>
inline void tile_outputs(acc_t* out, const acc_t* tile, const BandPixels& px, const TileTaps& taps,
                         int64_t kernel_w, int64_t row_step, int64_t col_step, const acc_t* w, const acc_t* bias) {
  const int64_t n = static_cast<int64_t>(px.full_start.size());
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    tile_output_block<8>(out, tile, px.full_start.data() + i, px.full_index.data() + i, taps, w, bias);
  const int64_t* st = px.full_start.data() + i;
  const int64_t* ix = px.full_index.data() + i;
  switch (n - i) {
    case 7: tile_output_block<7>(out, tile, st, ix, taps, w, bias); break;
    case 6: tile_output_block<6>(out, tile, st, ix, taps, w, bias); break;
    case 5: tile_output_block<5>(out, tile, st, ix, taps, w, bias); break;
    case 4: tile_output_block<4>(out, tile, st, ix, taps, w, bias); break;
    case 3: tile_output_block<3>(out, tile, st, ix, taps, w, bias); break;
    case 2: tile_output_block<2>(out, tile, st, ix, taps, w, bias); break;
    case 1: tile_output_block<1>(out, tile, st, ix, taps, w, bias); break;
    default: break;
  }
  for (const auto& e : px.edge) tile_output_edge(out, tile, e, kernel_w, row_step, col_step, w, bias);
}

// The weight gradient's sums over the listed output pixels: for every tap t,
// acc[t * L] += sum over i of g[i * L] * tile[starts[i] + offset[t]]. Four taps at a time share
// each gradient load; each tap's sum runs over the pixels in order in two sets (even and odd i),
// added at the end: a fixed order.
template <typename acc_t>
inline void tile_weight_sums(acc_t* __restrict acc, const acc_t* __restrict g, const acc_t* __restrict tile,
                             const Buffer<int64_t>& starts, const TileTaps& taps) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  const int64_t n = static_cast<int64_t>(starts.size()), nt = taps.size();
  const int64_t* st = starts.data();
  int64_t t = 0;
  for (; t < nt; t += 4) {
    const int T = static_cast<int>(std::min<int64_t>(4, nt - t));
    int64_t off[4];
    for (int k = 0; k < 4; ++k) off[k] = taps.offset[t + std::min(k, T - 1)];
    V a[4][2] = {};
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
      const V g0 = S::load(g + i * L), g1 = S::load(g + (i + 1) * L);
      const acc_t* x0 = tile + st[i];
      const acc_t* x1 = tile + st[i + 1];
      for (int k = 0; k < 4; ++k) {
        a[k][0] += g0 * S::load(x0 + off[k]);
        a[k][1] += g1 * S::load(x1 + off[k]);
      }
    }
    if (i < n) {
      const V g0 = S::load(g + i * L);
      const acc_t* x0 = tile + st[i];
      for (int k = 0; k < 4; ++k) a[k][0] += g0 * S::load(x0 + off[k]);
    }
    for (int k = 0; k < T; ++k) {
      acc_t* dst = acc + (t + k) * L;
      S::store(dst, S::load(dst) + (a[k][0] + a[k][1]));
    }
  }
}

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

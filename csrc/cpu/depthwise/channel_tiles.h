// Channel tiles: the depthwise convolution computed with a vector of L channels in the lanes (L =
// Simd<acc_t>::kLanes), from a tile of pixels x L channels in the accumulation type. The NCHW
// kernels of small planes (csrc/cpu/depthwise/nchw_channel_tiles.cpp) transpose L planes into such
// a tile, compute, and transpose the results back; the tile kernels here know nothing of the
// tensors' layout, so that any caller that fills a tile (channels_last rows, a fused op's
// intermediate) can use them.
//
// A tile is rows x cols pixels, pixel (r, c) at (r * cols + c) * L, lane j one channel; zero
// where the padded input has padding.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../../common/depthwise_params.h"
#include "../simd.h"

namespace atrous {
namespace cpu {

template <typename acc_t>
struct TileGeometry {
  int64_t cols = 0;               // tile columns (padded input columns the outputs read)
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_w = 1, dil_h = 1, dil_w = 1;
};

// One row of outputs, out_w pixels x L channels, into orow[(ow) * L]: output pixel ow reads tile
// row trow + kh * dil_h and column ow * stride_w + kw * dil_w for tap (kh, kw). w: [taps][L],
// bias: [L]. P pixels at a time keep their sums in registers across all taps.
template <int P, typename acc_t>
inline void tile_output_pixels(acc_t* __restrict orow, const acc_t* __restrict tile, int64_t trow,
                               int64_t ow0, const TileGeometry<acc_t>& g,
                               const acc_t* __restrict w, const acc_t* __restrict bias) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  V acc[P];
  const V b = S::load(bias);
  for (int q = 0; q < P; ++q) acc[q] = b;
  const int64_t step = g.stride_w * L;
  for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
    const acc_t* row = tile + ((trow + kh * g.dil_h) * g.cols + ow0 * g.stride_w) * L;
    const acc_t* wk = w + kh * g.kernel_w * L;
    for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const V wv = S::load(wk + kw * L);
      const acc_t* x = row + kw * g.dil_w * L;
      for (int q = 0; q < P; ++q) acc[q] += wv * S::load(x + q * step);
    }
  }
  for (int q = 0; q < P; ++q) S::store(orow + (ow0 + q) * L, acc[q]);
}

template <typename acc_t>
inline void tile_output_row(acc_t* orow, const acc_t* tile, int64_t trow, int64_t out_w,
                            const TileGeometry<acc_t>& g, const acc_t* w, const acc_t* bias) {
  int64_t ow = 0;
  for (; ow + 8 <= out_w; ow += 8) tile_output_pixels<8>(orow, tile, trow, ow, g, w, bias);
  if (ow + 4 <= out_w) {
    tile_output_pixels<4>(orow, tile, trow, ow, g, w, bias);
    ow += 4;
  }
  for (; ow < out_w; ++ow) tile_output_pixels<1>(orow, tile, trow, ow, g, w, bias);
}

// The weight gradient's partial sums of one output row: for every tap t = (kh, kw),
// acc[t] += sum over ow of grow[ow] * tile pixel (trow + kh * dil_h, ow * stride_w + kw * dil_w).
// Each tap's sum runs over ow in order, in two lanes sets (even and odd ow) added at the end of
// the row: a fixed order.
template <typename acc_t>
inline void tile_weight_row(acc_t* __restrict acc, const acc_t* __restrict grow,
                            const acc_t* __restrict tile, int64_t trow, int64_t out_w,
                            const TileGeometry<acc_t>& g) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  const int64_t step = g.stride_w * L;
  for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
    const acc_t* row = tile + (trow + kh * g.dil_h) * g.cols * L;
    int64_t kw = 0;
    for (; kw + 4 <= g.kernel_w; kw += 4) {  // four taps share each grad_output load
      V a[4][2] = {};
      const acc_t* x = row + kw * g.dil_w * L;
      const int64_t dw = g.dil_w * L;
      int64_t ow = 0;
      for (; ow + 2 <= out_w; ow += 2) {
        const V g0 = S::load(grow + ow * L), g1 = S::load(grow + (ow + 1) * L);
        for (int t = 0; t < 4; ++t) {
          a[t][0] += g0 * S::load(x + ow * step + t * dw);
          a[t][1] += g1 * S::load(x + (ow + 1) * step + t * dw);
        }
      }
      if (ow < out_w) {
        const V g0 = S::load(grow + ow * L);
        for (int t = 0; t < 4; ++t) a[t][0] += g0 * S::load(x + ow * step + t * dw);
      }
      for (int t = 0; t < 4; ++t) {
        acc_t* dst = acc + (kh * g.kernel_w + kw + t) * L;
        S::store(dst, S::load(dst) + (a[t][0] + a[t][1]));
      }
    }
    for (; kw < g.kernel_w; ++kw) {
      V a0 = V{}, a1 = V{};
      const acc_t* x = row + kw * g.dil_w * L;
      int64_t ow = 0;
      for (; ow + 2 <= out_w; ow += 2) {
        a0 += S::load(grow + ow * L) * S::load(x + ow * step);
        a1 += S::load(grow + (ow + 1) * L) * S::load(x + (ow + 1) * step);
      }
      if (ow < out_w) a0 += S::load(grow + ow * L) * S::load(x + ow * step);
      acc_t* dst = acc + (kh * g.kernel_w + kw) * L;
      S::store(dst, S::load(dst) + (a0 + a1));
    }
  }
}

}  // namespace cpu
}  // namespace atrous

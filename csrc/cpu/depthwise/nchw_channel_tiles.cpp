// NCHW kernels for small planes: L channels at a time in the vector lanes (see channel_tiles.h).
// A task takes one image, a block of L output channels and a band of output rows; it transposes
// the input rows the band reads into a zero-padded tile (pixels x L channels, in the accumulation
// type), computes there, and transposes the results back into the L output planes. Rows of 5-20
// pixels fill a vector along a row poorly and pay a row's set-up for few results; across channels
// every lane is used whatever the plane's width.
#include <ATen/Parallel.h>

#include <cstring>
#include <vector>

#include "channel_tiles.h"
#include "row_passes.h"
#include "kernels.h"
#include "plan.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

// L lanes' runs of `count` (<= L) consecutive values, lane j's at src[j] (lanes past `lanes`
// zero), as `count` vectors: vector q holds value q of every lane. One transpose in registers.
// Every loop over the L vectors runs to the constant L (the runtime bounds are tests inside): with
// all of them unrolled the vectors stay in registers. A loop to a runtime bound indexes them at run
// time, which puts all L on the stack: the transposes then measured 46% of a small-plane forward's
// time against 16% for the products ((8, 192, 20, 20) 3x3, Zen 4).
template <typename scalar_t, typename V, int L>
inline void gather_lanes(V (&v)[L], const scalar_t* const* src, int64_t lanes, int64_t count) {
  using C = Cast<scalar_t>;
#pragma GCC unroll 16
  for (int j = 0; j < L; ++j)
    v[j] = j >= lanes ? V{} : count == L ? C::load(src[j]) : C::load_first(src[j], count);
  transpose_square<L>(v);
}

// The inverse: `count` vectors of L lanes into lane j's run at dst[j], for j < lanes.
template <typename scalar_t, typename V, int L>
inline void scatter_lanes(V (&v)[L], scalar_t* const* dst, int64_t lanes, int64_t count) {
  using C = Cast<scalar_t>;
  transpose_square<L>(v);
#pragma GCC unroll 16
  for (int j = 0; j < L; ++j) {
    if (j >= lanes) break;
    if (count == L) {
      C::store(dst[j], v[j]);
    } else {
      C::store_first(dst[j], v[j], count);
    }
  }
}

template <typename scalar_t>
struct ChannelTileTask {
  using acc_t = acc_type_t<scalar_t>;
  using S = Simd<acc_t>;
  using V = typename S::vec;
  static constexpr int L = S::kLanes;
  const DepthwiseParams& p;
  const ChannelTilePlan& plan;
  const int64_t cols;  // of the input tile
  const TileTaps taps;

  ChannelTileTask(const DepthwiseParams& p_, const ChannelTilePlan& plan_)
      : p(p_), plan(plan_), cols(plan_.tile_cols),
        taps(p_.kernel_h, p_.kernel_w, p_.dil_h, p_.dil_w, plan_.tile_cols, L) {}

  // The window starts of output rows [oh0, oh1) in the tile fill_input made for them.
  void output_starts(Buffer<int64_t>& starts, int64_t oh0, int64_t oh1) const {
    window_starts(starts, oh1 - oh0, p.out_w, p.stride_h, p.stride_w, cols, L);
  }

  // The same pixels split into full windows and edges (their outputs at index (oh - oh0) * out_w + ow).
  void band_pixels(BandPixels& px, int64_t oh0, int64_t oh1) const {
    px.full_start.clear();
    px.full_index.clear();
    px.edge.clear();
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      int64_t kh_lo, kh_hi;
      valid_taps(oh, p.stride_h, p.pad_h, p.dil_h, p.kernel_h, p.in_h, &kh_lo, &kh_hi);
      for (int64_t ow = 0; ow < p.out_w; ++ow) {
        int64_t kw_lo, kw_hi;
        valid_taps(ow, p.stride_w, p.pad_w, p.dil_w, p.kernel_w, p.in_w, &kw_lo, &kw_hi);
        const int64_t start = ((oh - oh0) * p.stride_h * cols + ow * p.stride_w) * L;
        const int64_t index = (oh - oh0) * p.out_w + ow;
        if (kh_hi - kh_lo == p.kernel_h && kw_hi - kw_lo == p.kernel_w) {
          px.full_start.push_back(start);
          px.full_index.push_back(index);
        } else {
          px.edge.push_back({start, index, kh_lo, kh_hi, kw_lo, kw_hi});
        }
      }
    }
  }

  int64_t tasks() const { return p.batch * plan.blocks * plan.bands; }
  // Output channels [co0, co0 + lanes) and output rows [oh0, oh1) of image n for task t.
  void unpack(int64_t t, int64_t* n, int64_t* co0, int64_t* lanes, int64_t* oh0, int64_t* oh1) const {
    const int64_t band = t % plan.bands, blk = (t / plan.bands) % plan.blocks;
    *n = t / (plan.bands * plan.blocks);
    *co0 = blk * L;
    *lanes = std::min<int64_t>(L, p.out_channels - *co0);
    *oh0 = band * plan.rows_per_band;
    *oh1 = std::min(p.out_h, *oh0 + plan.rows_per_band);
  }

  // The padded input rows [oh0 * sH, (oh1 - 1) * sH + (kH - 1) * dH] of the lanes' input planes
  // into tile (channel co0 + j in lane j reads input channel (co0 + j) / m; lanes past `lanes`
  // zero): the rows inside the input are consecutive in each plane, taken L values at a time.
  // Without zero_padding the padding holds whatever it held (for callers that never read it).
  void fill_input(acc_t* tile, const scalar_t* in, int64_t n, int64_t co0, int64_t lanes, int64_t oh0,
                  int64_t oh1, bool zero_padding = true) const {
    const int64_t r0 = oh0 * p.stride_h, rows = (oh1 - 1 - oh0) * p.stride_h + (p.kernel_h - 1) * p.dil_h + 1;
    if (zero_padding) std::memset(tile, 0, sizeof(acc_t) * rows * cols * L);
    const int64_t ih_a = std::max<int64_t>(0, r0 - p.pad_h), ih_b = std::min(p.in_h, r0 + rows - p.pad_h);
    if (ih_a >= ih_b) return;
    const int64_t iw_hi = std::min(p.in_w, cols - p.pad_w);
    const scalar_t* src[L];
    for (int64_t j = 0; j < lanes; ++j)
      src[j] = in + ((n * p.channels + (co0 + j) / p.mult) * p.in_h + ih_a) * p.in_w;
    const int64_t total = (ih_b - ih_a) * p.in_w;
    int64_t ih = ih_a, iw = 0;
    V v[L];
    for (int64_t e = 0; e < total; e += L) {
      const int64_t count = std::min<int64_t>(L, total - e);
      gather_lanes<scalar_t, V, L>(v, src, lanes, count);
      for (int64_t j = 0; j < lanes; ++j) src[j] += count;
#pragma GCC unroll 16
      for (int q = 0; q < L; ++q) {
        if (q >= count) break;
        if (iw < iw_hi) S::store(tile + ((ih + p.pad_h - r0) * cols + iw + p.pad_w) * L, v[q]);
        if (++iw == p.in_w) {
          iw = 0;
          ++ih;
        }
      }
    }
  }

  // Output rows [oh0, oh1) of grad_output (or any NCHW tensor of the output's shape) into a dense
  // tile: pixel (r, ow) at (r * out_w + ow) * L.
  void fill_output_shaped(acc_t* tile, const scalar_t* go, int64_t n, int64_t co0, int64_t lanes, int64_t oh0,
                          int64_t oh1) const {
    const scalar_t* src[L];
    for (int64_t j = 0; j < lanes; ++j) src[j] = go + ((n * p.out_channels + co0 + j) * p.out_h + oh0) * p.out_w;
    const int64_t total = (oh1 - oh0) * p.out_w;
    V v[L];
    for (int64_t e = 0; e < total; e += L) {
      const int64_t count = std::min<int64_t>(L, total - e);
      gather_lanes<scalar_t, V, L>(v, src, lanes, count);
      for (int64_t j = 0; j < lanes; ++j) src[j] += count;
#pragma GCC unroll 16
      for (int q = 0; q < L; ++q) {
        if (q >= count) break;
        S::store(tile + (e + q) * L, v[q]);
      }
    }
  }

  // The inverse of fill_output_shaped for planes of `plane_rows` x `cols` per channel: rows
  // [r0, r1) of the dense tile into the lanes' planes of out (channel co0 + j in lane j).
  void store_dense(scalar_t* out, int64_t channels, int64_t plane_rows, int64_t cols, const acc_t* tile,
                   int64_t n, int64_t co0, int64_t lanes, int64_t r0, int64_t r1) const {
    scalar_t* dst[L];
    for (int64_t j = 0; j < lanes; ++j) dst[j] = out + ((n * channels + co0 + j) * plane_rows + r0) * cols;
    const int64_t total = (r1 - r0) * cols;
    V v[L];
    for (int64_t e = 0; e < total; e += L) {
      const int64_t count = std::min<int64_t>(L, total - e);
#pragma GCC unroll 16
      for (int q = 0; q < L; ++q) v[q] = q < count ? S::load(tile + (e + q) * L) : V{};
      scatter_lanes<scalar_t, V, L>(v, dst, lanes, count);
      for (int64_t j = 0; j < lanes; ++j) dst[j] += count;
    }
  }
};

}  // namespace

template <typename scalar_t>
void forward_nchw_channel_tiles(const DepthwiseParams& p, const ChannelTilePlan& plan, const scalar_t* in,
                                const scalar_t* weight, const scalar_t* bias, scalar_t* out) {
  using Task = ChannelTileTask<scalar_t>;
  using acc_t = typename Task::acc_t;
  constexpr int L = Task::L;
  const Task task(p, plan);
  const int64_t taps = p.kernel_h * p.kernel_w;
  const auto w = blocked_weight<acc_t, L>(weight, p.out_channels, taps);
  const auto b = blocked_weight<acc_t, L>(bias, p.out_channels, 1);
  // Each task: its tile, its band's outputs into obuf by compute(obuf, tile, oh0, oh1, weights,
  // bias), then obuf into the output planes.
  auto run = [&](bool zero_padding, auto&& compute) {
    at::parallel_for(0, task.tasks(), 1, [&](int64_t begin, int64_t end) {
      Buffer<acc_t> tile(plan.tile_rows * plan.tile_cols * L), obuf(plan.rows_per_band * p.out_w * L);
      for (int64_t t = begin; t < end; ++t) {
        int64_t n, co0, lanes, oh0, oh1;
        task.unpack(t, &n, &co0, &lanes, &oh0, &oh1);
        if (oh0 >= oh1) continue;
        task.fill_input(tile.data(), in, n, co0, lanes, oh0, oh1, zero_padding);
        compute(obuf.data(), tile.data(), oh0, oh1, w.data() + (co0 / L) * taps * L, b.data() + co0);
        task.store_dense(out, p.out_channels, p.out_h, p.out_w, obuf.data(), n, co0, lanes, oh0, oh1);
      }
    });
  };
  const int64_t row_step = p.dil_h * plan.tile_cols * L;
  // Whole rows by row_passes.h: no tap reads the padding, so the tile needs no zeros.
  if (plan.rows) {
    with_row_kernel(p.kernel_w, p.stride_w, p.out_w, p.dil_w, [&](auto KW, auto SW, auto NW) {
      run(false, [&](acc_t* ob, const acc_t* tile, int64_t oh0, int64_t oh1, const acc_t* wb, const acc_t* bb) {
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          RowIO<acc_t, acc_t, acc_t> io{tile + ((oh - oh0) * p.stride_h * plan.tile_cols + p.pad_w) * L, L, row_step,
                                        ob + (oh - oh0) * p.out_w * L, L, wb, bb, 0, 0, L};
          valid_taps(oh, p.stride_h, p.pad_h, p.dil_h, p.kernel_h, p.in_h, &io.kh_lo, &io.kh_hi);
          row_outputs<decltype(KW)::value, decltype(SW)::value, decltype(NW)::value, false>(io, p.out_w, p.dil_w);
        }
      });
    });
    return;
  }
  BandPixels px;  // with one band, the same for every task
  const bool one_band = plan.bands == 1;
  if (one_band) task.band_pixels(px, 0, p.out_h);
  run(true, [&](acc_t* ob, const acc_t* tile, int64_t oh0, int64_t oh1, const acc_t* wb, const acc_t* bb) {
    BandPixels local;
    if (!one_band) task.band_pixels(local, oh0, oh1);
    tile_outputs(ob, tile, one_band ? px : local, task.taps, p.kernel_w, row_step, p.dil_w * L, wb, bb);
  });
}

// grad_input of the columns [a, b) of one input row, stride 2 along W without dilation, every
// column's taps inside grad_output: column iw reads the taps kw of its parity ((iw + pW - kw) even)
// at output column (iw + pW) / 2 - kw / 2 (rounded down). Each row tap (kh_of[r], grad_output row
// grow[r]) adds to the row's sums in dst, its KW weights held in registers across the columns, and
// the columns go in pairs (one of each parity, so each one's taps are known at compile time). The
// terms of each pixel add in the generic loop's order: row taps in order, each one's kw ascending.
template <int KW, typename acc_t>
void stride2_row_interior(acc_t* dst, const acc_t* const* grow, const acc_t* const* wrow, int64_t nr,
                          int64_t pad_w, int64_t a, int64_t b) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  for (int64_t iw = a; iw < b; ++iw) S::store(dst + iw * L, V{});
  for (int64_t r = 0; r < nr; ++r) {
    V w[KW];
#pragma GCC unroll 8
    for (int kw = 0; kw < KW; ++kw) w[kw] = S::load(wrow[r] + kw * L);
    const acc_t* g = grow[r];
    auto column = [&](int64_t iw, auto parity) {
      constexpr int P = decltype(parity)::value;
      const int64_t o = (iw + pad_w) >> 1;
      V acc = S::load(dst + iw * L);
#pragma GCC unroll 8
      for (int kw = P; kw < KW; kw += 2) acc += w[kw] * S::load(g + (o - kw / 2) * L);
      S::store(dst + iw * L, acc);
    };
    int64_t iw = a;
    if (iw < b && ((iw + pad_w) & 1)) column(iw++, std::integral_constant<int, 1>{});
    for (; iw + 1 < b; iw += 2) {
      column(iw, std::integral_constant<int, 0>{});
      column(iw + 1, std::integral_constant<int, 1>{});
    }
    if (iw < b) column(iw, std::integral_constant<int, 0>{});
  }
}

// grad_input with one output channel per input channel (m = 1), any stride: input pixel (ih, iw)
// sums w[kh][kw] * go[oh][ow] over the taps with oh * sH = ih + pH - kh * dH and
// ow * sW = iw + pW - kw * dW inside grad_output. The taps of each input column are listed once;
// a task takes a band of input rows and the grad_output rows they read.
template <typename scalar_t>
void backward_input_nchw_channel_tiles(const DepthwiseParams& p, const ChannelTilePlan& plan,
                                       const scalar_t* go, const scalar_t* weight, scalar_t* gi) {
  using Task = ChannelTileTask<scalar_t>;
  using acc_t = typename Task::acc_t;
  using S = Simd<acc_t>;
  constexpr int L = Task::L;
  const Task task(p, plan);
  const int64_t taps = p.kernel_h * p.kernel_w;
  const auto w = blocked_weight<acc_t, L>(weight, p.out_channels, taps);
  // Column taps: for input column iw, entries [col_start[iw], col_start[iw + 1]) of (kw, ow).
  Buffer<int64_t> col_start(p.in_w + 1, 0), col_kw, col_ow;
  for (int64_t iw = 0; iw < p.in_w; ++iw) {
    for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
      const int64_t v = iw + p.pad_w - kw * p.dil_w;
      if (v < 0 || v % p.stride_w || v / p.stride_w >= p.out_w) continue;
      col_kw.push_back(kw);
      col_ow.push_back(v / p.stride_w);
    }
    col_start[iw + 1] = static_cast<int64_t>(col_kw.size());
  }
  // Stride 2 along W, no dilation, kernel width 3, 5 or 7: the columns [a, b) whose taps all lie
  // inside grad_output go by stride2_row_interior (b <= a: none).
  int64_t a = 0, b = 0;
  const bool s2 = p.stride_w == 2 && p.dil_w == 1 && (p.kernel_w == 3 || p.kernel_w == 5 || p.kernel_w == 7);
  if (s2) {
    auto full = [&](int64_t iw) {
      return col_start[iw + 1] - col_start[iw] == (p.kernel_w + 1 - ((iw + p.pad_w) & 1)) / 2;
    };
    while (a < p.in_w && !full(a)) ++a;
    b = a;
    while (b < p.in_w && full(b)) ++b;
  }
  const int64_t bands = plan.bands, rows_per = plan.rows_per_band;
  at::parallel_for(0, p.batch * plan.blocks * bands, 1, [&](int64_t begin, int64_t end) {
    Buffer<acc_t> gtile(plan.tile_rows * p.out_w * L), ibuf(plan.rows_per_band * p.in_w * L);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t band = t % bands, blk = (t / bands) % plan.blocks, n = t / (bands * plan.blocks);
      const int64_t co0 = blk * L, lanes = std::min<int64_t>(L, p.out_channels - co0);
      const int64_t ih0 = band * rows_per, ih1 = std::min(p.in_h, ih0 + rows_per);
      if (ih0 >= ih1) continue;
      // grad_output rows the band reads: oh with oh * sH in [ih0 + pH - (kH - 1) dH, ih1 - 1 + pH].
      const int64_t oh_lo = std::max<int64_t>(0, ceil_div(std::max<int64_t>(0, ih0 + p.pad_h - (p.kernel_h - 1) * p.dil_h), p.stride_h));
      const int64_t oh_hi = std::min(p.out_h, floor_div(ih1 - 1 + p.pad_h, p.stride_h) + 1);
      if (oh_lo < oh_hi) task.fill_output_shaped(gtile.data(), go, n, co0, lanes, oh_lo, oh_hi);
      const acc_t* wb = w.data() + blk * taps * L;
      for (int64_t ih = ih0; ih < ih1; ++ih) {
        int64_t kh_of[64], oh_of[64], nr = 0;  // row taps (the planner keeps kH <= 64)
        for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
          const int64_t v = ih + p.pad_h - kh * p.dil_h;
          if (v < 0 || v % p.stride_h || v / p.stride_h >= p.out_h) continue;
          kh_of[nr] = kh;
          oh_of[nr++] = v / p.stride_h - oh_lo;
        }
        acc_t* const dst = ibuf.data() + (ih - ih0) * p.in_w * L;
        if (b > a) {
          const acc_t* grow[64];
          const acc_t* wrow[64];
          for (int64_t r = 0; r < nr; ++r) {
            grow[r] = gtile.data() + oh_of[r] * p.out_w * L;
            wrow[r] = wb + kh_of[r] * p.kernel_w * L;
          }
          if (p.kernel_w == 3) {
            stride2_row_interior<3>(dst, grow, wrow, nr, p.pad_w, a, b);
          } else if (p.kernel_w == 5) {
            stride2_row_interior<5>(dst, grow, wrow, nr, p.pad_w, a, b);
          } else {
            stride2_row_interior<7>(dst, grow, wrow, nr, p.pad_w, a, b);
          }
        }
        for (int64_t iw = 0; iw < p.in_w; ++iw) {
          if (iw == a && b > a) iw = b;
          if (iw >= p.in_w) break;
          auto acc = S::broadcast(0);
          for (int64_t r = 0; r < nr; ++r) {
            const acc_t* grow = gtile.data() + oh_of[r] * p.out_w * L;
            const acc_t* wr = wb + kh_of[r] * p.kernel_w * L;
            for (int64_t e = col_start[iw]; e < col_start[iw + 1]; ++e)
              acc += S::load(wr + col_kw[e] * L) * S::load(grow + col_ow[e] * L);
          }
          S::store(dst + iw * L, acc);
        }
      }
      task.store_dense(gi, p.channels, p.in_h, p.in_w, ibuf.data(), n, co0, lanes, ih0, ih1);
    }
  });
}

// The weight gradient: each task's partial sums ([tap][L] of its block) over its image and band of
// output rows, then per block the tasks' sums added in task order (images, then bands): a fixed
// order whatever the number of threads.
template <typename scalar_t>
void backward_weight_nchw_channel_tiles(const DepthwiseParams& p, const ChannelTilePlan& plan,
                                        const scalar_t* go, const scalar_t* in, scalar_t* gw) {
  using Task = ChannelTileTask<scalar_t>;
  using acc_t = typename Task::acc_t;
  constexpr int L = Task::L;
  const Task task(p, plan);
  const int64_t taps = p.kernel_h * p.kernel_w;
  Buffer<acc_t> partial(task.tasks() * taps * L, acc_t(0));
  // Each task: its tiles of input and grad_output, then sums(partial sums, gtile, tile, oh0, oh1).
  auto run = [&](bool zero_padding, auto&& sums) {
    at::parallel_for(0, task.tasks(), 1, [&](int64_t begin, int64_t end) {
      Buffer<acc_t> tile(plan.tile_rows * plan.tile_cols * L), gtile(plan.rows_per_band * p.out_w * L);
      for (int64_t t = begin; t < end; ++t) {
        int64_t n, co0, lanes, oh0, oh1;
        task.unpack(t, &n, &co0, &lanes, &oh0, &oh1);
        if (oh0 >= oh1) continue;
        task.fill_input(tile.data(), in, n, co0, lanes, oh0, oh1, zero_padding);
        task.fill_output_shaped(gtile.data(), go, n, co0, lanes, oh0, oh1);
        sums(partial.data() + t * taps * L, gtile.data(), tile.data(), oh0, oh1);
      }
    });
  };
  const int64_t row_step = p.dil_h * plan.tile_cols * L;
  if (plan.rows) {
    with_row_kernel(p.kernel_w, p.stride_w, p.out_w, p.dil_w, [&](auto KW, auto SW, auto NW) {
      run(false, [&](acc_t* acc, const acc_t* gtile, const acc_t* tile, int64_t oh0, int64_t oh1) {
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          int64_t kh_lo, kh_hi;
          valid_taps(oh, p.stride_h, p.pad_h, p.dil_h, p.kernel_h, p.in_h, &kh_lo, &kh_hi);
          const WeightIO<acc_t, acc_t> io{
              gtile + (oh - oh0) * p.out_w * L, L,
              tile + (((oh - oh0) * p.stride_h + kh_lo * p.dil_h) * plan.tile_cols + p.pad_w) * L, L, row_step,
              acc + kh_lo * p.kernel_w * L, kh_hi - kh_lo, L};
          weight_row<decltype(KW)::value, decltype(SW)::value, decltype(NW)::value, false>(io, p.out_w, p.dil_w);
        }
      });
    });
  }
  if (!plan.rows) {
    run(true, [&](acc_t* acc, const acc_t* gtile, const acc_t* tile, int64_t oh0, int64_t oh1) {
      Buffer<int64_t> starts;
      task.output_starts(starts, oh0, oh1);
      tile_weight_sums(acc, gtile, tile, starts, task.taps);
    });
  }
  at::parallel_for(0, plan.blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t lanes = std::min<int64_t>(L, p.out_channels - blk * L);
      for (int64_t tap = 0; tap < taps; ++tap) {
        auto sum = Simd<acc_t>::broadcast(0);
        for (int64_t n = 0; n < p.batch; ++n)
          for (int64_t band = 0; band < plan.bands; ++band)
            sum += Simd<acc_t>::load(partial.data() + (((n * plan.blocks + blk) * plan.bands + band) * taps + tap) * L);
        for (int64_t j = 0; j < lanes; ++j) gw[(blk * L + j) * taps + tap] = static_cast<scalar_t>(sum[j]);
      }
    }
  });
}

#define ATROUS_CHANNEL_TILES(T)                                                                        \
  template void forward_nchw_channel_tiles<T>(const DepthwiseParams&, const ChannelTilePlan&, const T*, \
                                              const T*, const T*, T*);                                 \
  template void backward_input_nchw_channel_tiles<T>(const DepthwiseParams&, const ChannelTilePlan&,    \
                                                     const T*, const T*, T*);                          \
  template void backward_weight_nchw_channel_tiles<T>(const DepthwiseParams&, const ChannelTilePlan&,   \
                                                      const T*, const T*, T*);
ATROUS_CHANNEL_TILES(float)
ATROUS_CHANNEL_TILES(double)
ATROUS_CHANNEL_TILES(c10::Half)
ATROUS_CHANNEL_TILES(c10::BFloat16)
#undef ATROUS_CHANNEL_TILES

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

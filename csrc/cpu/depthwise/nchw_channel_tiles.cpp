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
#include "kernels.h"
#include "plan.h"

namespace atrous {
namespace cpu {
namespace {

template <typename scalar_t>
struct ChannelTileTask {
  using acc_t = acc_type_t<scalar_t>;
  static constexpr int L = Simd<acc_t>::kLanes;
  const DepthwiseParams& p;
  const ChannelTilePlan& plan;
  TileGeometry<acc_t> g;

  ChannelTileTask(const DepthwiseParams& p_, const ChannelTilePlan& plan_) : p(p_), plan(plan_) {
    g.cols = plan.tile_cols;
    g.kernel_h = p.kernel_h;
    g.kernel_w = p.kernel_w;
    g.stride_w = p.stride_w;
    g.dil_h = p.dil_h;
    g.dil_w = p.dil_w;
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
  // zero).
  void fill_input(acc_t* tile, const scalar_t* in, int64_t n, int64_t co0, int64_t lanes, int64_t oh0,
                  int64_t oh1) const {
    const int64_t r0 = oh0 * p.stride_h, rows = (oh1 - 1 - oh0) * p.stride_h + (p.kernel_h - 1) * p.dil_h + 1;
    std::memset(tile, 0, sizeof(acc_t) * rows * g.cols * L);
    const int64_t iw_hi = std::min(p.in_w, g.cols - p.pad_w);
    for (int64_t j = 0; j < lanes; ++j) {
      const scalar_t* x = in + (n * p.channels + (co0 + j) / p.mult) * p.in_h * p.in_w;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t ih = r0 + r - p.pad_h;
        if (ih < 0 || ih >= p.in_h) continue;
        const scalar_t* src = x + ih * p.in_w;
        acc_t* dst = tile + (r * g.cols + p.pad_w) * L + j;
        for (int64_t iw = 0; iw < iw_hi; ++iw) dst[iw * L] = static_cast<acc_t>(src[iw]);
      }
    }
  }

  // rows x out_w pixels of grad_output (or any NCHW tensor of the output's shape) into a dense
  // tile: pixel (r, ow) at (r * out_w + ow) * L.
  void fill_output_shaped(acc_t* tile, const scalar_t* go, int64_t n, int64_t co0, int64_t lanes, int64_t oh0,
                          int64_t oh1) const {
    const int64_t cols = p.out_w;
    if (lanes < L) std::memset(tile, 0, sizeof(acc_t) * (oh1 - oh0) * cols * L);
    for (int64_t j = 0; j < lanes; ++j) {
      const scalar_t* src = go + ((n * p.out_channels + co0 + j) * p.out_h + oh0) * cols;
      acc_t* dst = tile + j;
      for (int64_t i = 0; i < (oh1 - oh0) * cols; ++i) dst[i * L] = static_cast<acc_t>(src[i]);
    }
  }
};

// Lanes [0, lanes) of a row of `count` pixels x L into rows of the L planes at dst + j * plane.
template <typename scalar_t, typename acc_t, int L>
inline void store_lanes(scalar_t* dst, int64_t plane, const acc_t* row, int64_t count, int64_t lanes) {
  for (int64_t j = 0; j < lanes; ++j) {
    scalar_t* d = dst + j * plane;
    for (int64_t i = 0; i < count; ++i) d[i] = static_cast<scalar_t>(row[i * L + j]);
  }
}

// The weight [Co][taps] as [block][tap][L] in acc_t, lanes past Co zero.
template <typename acc_t, int L, typename scalar_t>
std::vector<acc_t> blocked_weight(const scalar_t* weight, int64_t Co, int64_t taps, int64_t blocks) {
  std::vector<acc_t> w(blocks * taps * L, acc_t(0));
  for (int64_t co = 0; co < Co; ++co)
    for (int64_t t = 0; t < taps; ++t) w[((co / L) * taps + t) * L + co % L] = static_cast<acc_t>(weight[co * taps + t]);
  return w;
}

}  // namespace

template <typename scalar_t>
void forward_nchw_channel_tiles(const DepthwiseParams& p, const ChannelTilePlan& plan, const scalar_t* in,
                                const scalar_t* weight, const scalar_t* bias, scalar_t* out) {
  using Task = ChannelTileTask<scalar_t>;
  using acc_t = typename Task::acc_t;
  constexpr int L = Task::L;
  const Task task(p, plan);
  const int64_t taps = p.kernel_h * p.kernel_w;
  const auto w = blocked_weight<acc_t, L>(weight, p.out_channels, taps, plan.blocks);
  std::vector<acc_t> b(plan.blocks * L, acc_t(0));
  if (bias)
    for (int64_t co = 0; co < p.out_channels; ++co) b[co] = static_cast<acc_t>(bias[co]);
  at::parallel_for(0, task.tasks(), 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> tile(plan.tile_rows * plan.tile_cols * L), orow(p.out_w * L);
    for (int64_t t = begin; t < end; ++t) {
      int64_t n, co0, lanes, oh0, oh1;
      task.unpack(t, &n, &co0, &lanes, &oh0, &oh1);
      if (oh0 >= oh1) continue;
      task.fill_input(tile.data(), in, n, co0, lanes, oh0, oh1);
      const acc_t* wb = w.data() + (co0 / L) * taps * L;
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        tile_output_row(orow.data(), tile.data(), (oh - oh0) * p.stride_h, p.out_w, task.g, wb, b.data() + co0);
        store_lanes<scalar_t, acc_t, L>(out + ((n * p.out_channels + co0) * p.out_h + oh) * p.out_w,
                                        p.out_h * p.out_w, orow.data(), p.out_w, lanes);
      }
    }
  });
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
  const auto w = blocked_weight<acc_t, L>(weight, p.out_channels, taps, plan.blocks);
  // Column taps: for input column iw, entries [col_start[iw], col_start[iw + 1]) of (kw, ow).
  std::vector<int64_t> col_start(p.in_w + 1, 0), col_kw, col_ow;
  for (int64_t iw = 0; iw < p.in_w; ++iw) {
    for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
      const int64_t v = iw + p.pad_w - kw * p.dil_w;
      if (v < 0 || v % p.stride_w || v / p.stride_w >= p.out_w) continue;
      col_kw.push_back(kw);
      col_ow.push_back(v / p.stride_w);
    }
    col_start[iw + 1] = static_cast<int64_t>(col_kw.size());
  }
  const int64_t bands = plan.bands, rows_per = plan.rows_per_band;
  at::parallel_for(0, p.batch * plan.blocks * bands, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> gtile(plan.tile_rows * p.out_w * L), irow(p.in_w * L);
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
        for (int64_t iw = 0; iw < p.in_w; ++iw) {
          auto acc = S::broadcast(0);
          for (int64_t r = 0; r < nr; ++r) {
            const acc_t* grow = gtile.data() + oh_of[r] * p.out_w * L;
            const acc_t* wr = wb + kh_of[r] * p.kernel_w * L;
            for (int64_t e = col_start[iw]; e < col_start[iw + 1]; ++e)
              acc += S::load(wr + col_kw[e] * L) * S::load(grow + col_ow[e] * L);
          }
          S::store(irow.data() + iw * L, acc);
        }
        store_lanes<scalar_t, acc_t, L>(gi + ((n * p.channels + co0) * p.in_h + ih) * p.in_w, p.in_h * p.in_w,
                                        irow.data(), p.in_w, lanes);
      }
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
  std::vector<acc_t> partial(task.tasks() * taps * L, acc_t(0));
  at::parallel_for(0, task.tasks(), 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> tile(plan.tile_rows * plan.tile_cols * L), gtile(plan.rows_per_band * p.out_w * L);
    for (int64_t t = begin; t < end; ++t) {
      int64_t n, co0, lanes, oh0, oh1;
      task.unpack(t, &n, &co0, &lanes, &oh0, &oh1);
      if (oh0 >= oh1) continue;
      task.fill_input(tile.data(), in, n, co0, lanes, oh0, oh1);
      task.fill_output_shaped(gtile.data(), go, n, co0, lanes, oh0, oh1);
      acc_t* acc = partial.data() + t * taps * L;
      for (int64_t oh = oh0; oh < oh1; ++oh)
        tile_weight_row(acc, gtile.data() + (oh - oh0) * p.out_w * L, tile.data(), (oh - oh0) * p.stride_h,
                        p.out_w, task.g);
    }
  });
  const int64_t per_block = p.batch * plan.bands;
  at::parallel_for(0, plan.blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t lanes = std::min<int64_t>(L, p.out_channels - blk * L);
      for (int64_t tap = 0; tap < taps; ++tap) {
        for (int64_t j = 0; j < lanes; ++j) {
          acc_t s = 0;
          for (int64_t n = 0; n < p.batch; ++n)
            for (int64_t band = 0; band < plan.bands; ++band)
              s += partial[(((n * plan.blocks + blk) * plan.bands + band) * taps + tap) * L + j];
          gw[(blk * L + j) * taps + tap] = static_cast<scalar_t>(s);
        }
      }
    }
  });
  (void)per_block;
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

}  // namespace cpu
}  // namespace atrous

// CPU max-pool forward, channels_last: vectors across channels. For each output pixel the window's
// taps inside the input are found once; then every block of W channels (the last one masked)
// runs torch's scan lane by lane (greater, or NaN, replaces the running maximum and its index),
// up to four blocks at a time so that each tap's loads share one pass over the window. Output rows
// of all images are the parallel unit, so batch 1 spreads over every thread.
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>

#include "../simd.h"
#include "kernels.h"
#include "window.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

template <typename scalar_t, bool kWithIndices>
struct NhwcChannels {
  using acc_t = acc_type_t<scalar_t>;
  using S = Simd<acc_t>;
  using Cv = Cast<scalar_t>;
  using I = IntLanes<acc_t>;
  using vec = typename S::vec;
  using ivec = typename I::lanes;
  static constexpr int W = S::kLanes;
  static constexpr int kBlocks = 4;  // channel vectors kept in registers across the window

  const PoolParams& p;
  const scalar_t* in;
  scalar_t* out;
  int64_t* idx;

  // B full vectors of channels [c0, c0 + B * W) of one output pixel.
  template <int B>
  void full_blocks(const scalar_t* image, const WindowTaps& t, int64_t c0, scalar_t* o,
                   int64_t* oi) const {
    const int64_t C = p.channels;
    vec m[B];
    ivec at[B];
    for (int b = 0; b < B; ++b) {
      m[b] = S::broadcast(-std::numeric_limits<acc_t>::infinity());
      at[b] = I::broadcast(t.first_index(p));
    }
    for (int64_t kh = t.kh0; kh < t.kh1; ++kh) {
      const int64_t ih = t.h_start + kh * p.dil_h;
      for (int64_t kw = t.kw0; kw < t.kw1; ++kw) {
        const int64_t iw = t.w_start + kw * p.dil_w;
        const scalar_t* src = image + (ih * p.in_w + iw) * C + c0;
        const ivec pos = I::broadcast(ih * p.in_w + iw);
        for (int b = 0; b < B; ++b) {
          const vec v = Cv::load(src + b * W);
          const ivec take = (v > m[b]) | (v != v);
          m[b] = take ? v : m[b];
          if constexpr (kWithIndices) at[b] = take ? pos : at[b];
        }
      }
    }
    for (int b = 0; b < B; ++b) {
      Cv::store(o + c0 + b * W, m[b]);
      if constexpr (kWithIndices) I::store_wide(oi + c0 + b * W, at[b]);
    }
  }

  // The last n (< W) channels from c0.
  void tail_block(const scalar_t* image, const WindowTaps& t, int64_t c0, int64_t n, scalar_t* o,
                  int64_t* oi) const {
    const int64_t C = p.channels;
    vec m = S::broadcast(-std::numeric_limits<acc_t>::infinity());
    ivec at = I::broadcast(t.first_index(p));
    for (int64_t kh = t.kh0; kh < t.kh1; ++kh) {
      const int64_t ih = t.h_start + kh * p.dil_h;
      for (int64_t kw = t.kw0; kw < t.kw1; ++kw) {
        const int64_t iw = t.w_start + kw * p.dil_w;
        const vec v = Cv::load_first(image + (ih * p.in_w + iw) * C + c0, n);
        const ivec take = (v > m) | (v != v);
        m = take ? v : m;
        if constexpr (kWithIndices) at = take ? I::broadcast(ih * p.in_w + iw) : at;
      }
    }
    Cv::store_first(o + c0, m, n);
    if constexpr (kWithIndices) I::store_wide_first(oi + c0, at, n);
  }

  // Output row `r` (= n * oH + oh), every pixel and channel.
  void row(int64_t r) const {
    const int64_t n = r / p.out_h, oh = r % p.out_h, C = p.channels;
    const scalar_t* image = in + n * p.in_h * p.in_w * C;
    for (int64_t ow = 0; ow < p.out_w; ++ow) {
      const WindowTaps t(p, oh, ow);
      const int64_t pix = r * p.out_w + ow;
      scalar_t* o = out + pix * C;
      int64_t* oi = kWithIndices ? idx + pix * C : nullptr;
      int64_t c = 0;
      for (; c + kBlocks * W <= C; c += kBlocks * W) full_blocks<kBlocks>(image, t, c, o, oi);
      switch ((C - c) / W) {
        case 3: full_blocks<3>(image, t, c, o, oi); c += 3 * W; break;
        case 2: full_blocks<2>(image, t, c, o, oi); c += 2 * W; break;
        case 1: full_blocks<1>(image, t, c, o, oi); c += W; break;
        default: break;
      }
      if (c < C) tail_block(image, t, c, C - c, o, oi);
    }
  }
};

template <typename scalar_t, bool kWithIndices>
void run_nhwc(const PoolParams& p, const PoolPlan& plan, const scalar_t* in, scalar_t* out, int64_t* idx) {
  const NhwcChannels<scalar_t, kWithIndices> k{p, in, out, idx};
  at::parallel_for(0, p.batch * p.out_h, plan.forward_grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) k.row(r);
  });
}

}  // namespace

template <typename scalar_t>
void max_pool_forward_nhwc(const PoolParams& p, const PoolPlan& plan, const scalar_t* in, scalar_t* out,
                           int64_t* idx) {
  if (p.with_indices) {
    run_nhwc<scalar_t, true>(p, plan, in, out, idx);
  } else {
    run_nhwc<scalar_t, false>(p, plan, in, out, nullptr);
  }
}

#define INSTANTIATE(T) \
  template void max_pool_forward_nhwc<T>(const PoolParams&, const PoolPlan&, const T*, T*, int64_t*);
ATROUS_MAX_POOL_INSTANTIATE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

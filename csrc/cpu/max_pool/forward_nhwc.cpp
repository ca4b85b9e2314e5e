// CPU max-pool forward, channels_last: vectors across channels, two ways (plan.cpp chooses).
// - kNhwcChannels: for each output pixel the window's taps inside the input are found once; then
//   blocks of W channels (the last one masked) run torch's scan lane by lane (greater, or NaN,
//   replaces the running maximum and its index), up to kMaxBlocks at a time with their maxima and
//   indices in registers, so that each tap's loads share one pass over the window. When a pixel's
//   channels fit in one such pass, the window is read once, tap after tap, each tap's channels in
//   order: streams the hardware prefetchers follow.
// - kNhwcTaps: wider pixels, taken tap by tap, each tap's channels in one sequential pass, with the
//   running maximum kept in the output pixel and the index in a per-thread int32 buffer (what
//   torch does); interleaving the blocks of several taps would read each pixel in pieces, which
//   measured up to twice as slow on 256 and 512 channels.
// Output pixels of all images are the parallel unit, so batch 1 spreads evenly over every thread
// (whole rows left one of 2 threads 6 of SegNet enc5's 11 rows).
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <type_traits>

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
  // Channel vectors whose maxima and indices stay in registers across the window (with the input
  // vector, its position and the mask): plan.cpp's register_blocks for this capability.
  static constexpr int kMaxBlocks = kVectorRegisters / 4;

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

  // pixel(image, taps, o, oi) for every pixel of output row `r` (= n * oH + oh): its image, its
  // window's taps, and where its C values and indices go.
  template <typename Pixel>
  void for_each_pixel(int64_t begin, int64_t end, Pixel&& pixel) const {
    const int64_t C = p.channels;
    int64_t ow = begin % p.out_w, r = begin / p.out_w, n = r / p.out_h, oh = r % p.out_h;
    for (int64_t pix = begin; pix < end; ++pix) {
      pixel(in + n * p.in_h * p.in_w * C, WindowTaps(p, oh, ow), out + pix * C,
            kWithIndices ? idx + pix * C : nullptr);
      if (++ow == p.out_w) {  // the next row, of the next image after the last
        ow = 0;
        if (++oh == p.out_h) oh = 0, ++n;
      }
    }
  }

  // Output pixels [begin, end) of all images, every channel.
  void pixels(int64_t begin, int64_t end) const {
    for_each_pixel(begin, end, [&](const scalar_t* image, const WindowTaps& t, scalar_t* o, int64_t* oi) {
      const int64_t C = p.channels;
      int64_t c = 0;
      for (; c + kMaxBlocks * W <= C; c += kMaxBlocks * W) full_blocks<kMaxBlocks>(image, t, c, o, oi);
      c += some_blocks(image, t, c, (C - c) / W, o, oi);
      if (c < C) tail_block(image, t, c, C - c, o, oi);
    });
  }

  // full_blocks<b> for the run-time 0 <= b <= B (none for 0); returns the channels done.
  template <int B = kMaxBlocks - 1>
  int64_t some_blocks(const scalar_t* image, const WindowTaps& t, int64_t c0, int64_t b, scalar_t* o,
                      int64_t* oi) const {
    if constexpr (B > 0) {
      if (b == B) {
        full_blocks<B>(image, t, c0, o, oi);
        return B * W;
      }
      return some_blocks<B - 1>(image, t, c0, b, o, oi);
    }
    return 0;
  }
};

// kNhwcTaps: each tap of a window in one sequential pass over its channels (the last n < W
// channels as NhwcChannels takes them).
template <typename scalar_t, bool kWithIndices>
struct NhwcTaps : NhwcChannels<scalar_t, kWithIndices> {
  using Base = NhwcChannels<scalar_t, kWithIndices>;
  using typename Base::acc_t, typename Base::S, typename Base::Cv, typename Base::I, typename Base::vec,
      typename Base::ivec;
  using Base::W, Base::p, Base::in, Base::out, Base::idx;

  // The running maxima are kept in the output pixel for float and double; the half types keep
  // them in a per-thread float buffer (converting every tap's maxima back and forth measured up to
  // 1.8x slower than the register path on 256 bfloat16 channels), stored once at the end.
  static constexpr bool kMaximaInOutput = std::is_same_v<acc_t, scalar_t>;

  // One tap's channels [0, full) against the running maxima in m and indices in at; the first tap
  // (any value, even -inf, wins over the initial -inf and the first position) just copies.
  void tap(const scalar_t* src, int64_t pos, int64_t full, bool first, acc_t* m, ivec* at) const {
    const ivec pv = I::broadcast(pos);
    if (first) {
      for (int64_t c = 0; c < full; c += W) {
        S::store(m + c, Cv::load(src + c));
        if constexpr (kWithIndices) at[c / W] = pv;
      }
      return;
    }
    for (int64_t c = 0; c < full; c += W) {
      const vec v = Cv::load(src + c), mv = S::load(m + c);
      const ivec take = (v > mv) | (v != v);
      S::store(m + c, take ? v : mv);
      if constexpr (kWithIndices) at[c / W] = take ? pv : at[c / W];
    }
  }

  // Output pixels [begin, end) of all images, every channel; `at` holds C / W index vectors and
  // `maxima` C values (unused where kMaximaInOutput).
  void pixels(int64_t begin, int64_t end, ivec* at, acc_t* maxima) const {
    const int64_t C = p.channels, full = C / W * W;
    this->for_each_pixel(begin, end, [&](const scalar_t* image, const WindowTaps& t, scalar_t* o, int64_t* oi) {
      acc_t* m = maxima;
      if constexpr (kMaximaInOutput) m = o;
      bool first = true;
      if (t.kh0 == t.kh1 || t.kw0 == t.kw1) {  // no tap inside: -inf at the first position
        for (int64_t c = 0; c < full; c += W) {
          S::store(m + c, S::broadcast(-std::numeric_limits<acc_t>::infinity()));
          at[c / W] = I::broadcast(t.first_index(p));
        }
      }
      for (int64_t kh = t.kh0; kh < t.kh1; ++kh) {
        const int64_t ih = t.h_start + kh * p.dil_h;
        for (int64_t kw = t.kw0; kw < t.kw1; ++kw, first = false) {
          const int64_t iw = t.w_start + kw * p.dil_w;
          tap(image + (ih * p.in_w + iw) * C, ih * p.in_w + iw, full, first, m, at);
        }
      }
      if constexpr (!kMaximaInOutput) {
        for (int64_t c = 0; c < full; c += W) Cv::store(o + c, S::load(m + c));
      }
      if constexpr (kWithIndices) {
        for (int64_t c = 0; c < full; c += W) I::store_wide(oi + c, at[c / W]);
      }
      if (full < C) this->tail_block(image, t, full, C - full, o, oi);
    });
  }
};

template <typename scalar_t, bool kWithIndices>
void run_nhwc(const PoolParams& p, const PoolPlan& plan, const scalar_t* in, scalar_t* out, int64_t* idx) {
  const int64_t pixels = p.batch * p.out_h * p.out_w;
  if (plan.forward == PoolForward::kNhwcTaps) {
    using K = NhwcTaps<scalar_t, kWithIndices>;
    const K k{{p, in, out, idx}};
    at::parallel_for(0, pixels, plan.forward_grain, [&](int64_t begin, int64_t end) {
      Buffer<typename K::ivec> at(p.channels / K::W + 1);
      Buffer<typename K::acc_t> maxima(K::kMaximaInOutput ? 0 : p.channels);
      k.pixels(begin, end, at.data(), maxima.data());
    });
    return;
  }
  const NhwcChannels<scalar_t, kWithIndices> k{p, in, out, idx};
  at::parallel_for(0, pixels, plan.forward_grain, [&](int64_t begin, int64_t end) { k.pixels(begin, end); });
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

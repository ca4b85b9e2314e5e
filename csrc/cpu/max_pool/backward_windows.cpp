// CPU max-pool backward, channels_last, windows that do not overlap (stride >= the window's span
// on both axes; plan.cpp checks that, and that every window has a tap): each input element lies
// in one window at most, so its gradient is that window's gradient where the window's index names
// it, else zero. A task is one output row of windows (its "cell": the input rows from its windows'
// first row to the next output row's, the last cell to the input's end) and a chunk of channels:
// it reads each window's gradients and indices once, a vector of channels at a time, and writes
// every tap of the window from them; input pixels of the cell in no window (dilation's holes, the
// gaps of a stride past the span, rows and columns past the last window) are zeroed. Every element
// is written once; nothing is summed, so results are bitwise torch's.
#include <ATen/Parallel.h>

#include <algorithm>

#include "../simd.h"
#include "kernels.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

template <typename scalar_t>
struct NhwcWindows {
  using acc_t = acc_type_t<scalar_t>;
  using S = Simd<acc_t>;
  using Cv = Cast<scalar_t>;
  using I = IntLanes<acc_t>;
  using vec = typename S::vec;
  static constexpr int W = S::kLanes;

  const PoolParams& p;
  const scalar_t* go;
  const int64_t* idx;
  scalar_t* gi;
  const int64_t C, width, chunks;
  Buffer<int64_t> col_window;  // per input column: the window whose tap it is, or -1

  NhwcWindows(const PoolParams& p_, int64_t width_, const scalar_t* go_, const int64_t* idx_, scalar_t* gi_)
      : p(p_), go(go_), idx(idx_), gi(gi_), C(p.channels), width(width_), chunks(ceil_div(C, width_)),
        col_window(p.in_w, -1) {
    for (int64_t ow = 0; ow < p.out_w; ++ow) {
      int64_t lo = 0, hi = 0;
      const int64_t start = ow * p.stride_w - p.pad_w;
      pool_taps(start, p.kernel_w, p.dil_w, p.in_w, &lo, &hi);
      for (int64_t kw = lo; kw < hi; ++kw) col_window[start + kw * p.dil_w] = ow;
    }
  }

  int64_t tasks() const { return p.batch * p.out_h * chunks; }

  // Output row oh's cell: input rows [first, end).
  int64_t cell_first(int64_t oh) const { return oh == 0 ? 0 : oh * p.stride_h - p.pad_h; }
  int64_t cell_end(int64_t oh) const { return oh + 1 == p.out_h ? p.in_h : (oh + 1) * p.stride_h - p.pad_h; }

  void zero(scalar_t* dst, int64_t n) const { std::fill(dst, dst + n, scalar_t(0)); }

  void task(int64_t t) const {
    const int64_t chunk = t % chunks, cell = t / chunks, n = cell / p.out_h, oh = cell % p.out_h;
    const int64_t c0 = chunk * width, w = std::min(width, C - c0);
    scalar_t* plane = gi + n * p.in_h * p.in_w * C + c0;
    const int64_t start_h = oh * p.stride_h - p.pad_h;
    int64_t lo = 0, hi = 0;
    pool_taps(start_h, p.kernel_h, p.dil_h, p.in_h, &lo, &hi);
    // Zeros first: the cell's rows that are not taps, and the columns in no window of those that are.
    for (int64_t ih = cell_first(oh); ih < cell_end(oh); ++ih) {
      const int64_t kh = ih - start_h;
      const bool tap_row = kh >= lo * p.dil_h && kh < hi * p.dil_h && kh % p.dil_h == 0;
      for (int64_t iw = 0; iw < p.in_w; ++iw)
        if (!tap_row || col_window[iw] < 0) zero(plane + (ih * p.in_w + iw) * C, w);
    }
    const int64_t out_base = ((n * p.out_h + oh) * p.out_w) * C + c0;
    for (int64_t ow = 0; ow < p.out_w; ++ow) {
      const scalar_t* g = go + out_base + ow * C;
      const int64_t* id = idx + out_base + ow * C;
      int64_t wlo = 0, whi = 0;
      const int64_t start_w = ow * p.stride_w - p.pad_w;
      pool_taps(start_w, p.kernel_w, p.dil_w, p.in_w, &wlo, &whi);
      int64_t c = 0;
      for (; c + W <= w; c += W) {
        const vec gv = Cv::load(g + c);
        for (int64_t kh = lo; kh < hi; ++kh) {
          const int64_t ih = start_h + kh * p.dil_h;
          for (int64_t kw = wlo; kw < whi; ++kw) {
            const int64_t pos = ih * p.in_w + start_w + kw * p.dil_w;
            Cv::store(plane + pos * C + c, I::where_equal(id + c, pos, gv));
          }
        }
      }
      if (c < w) {  // the last m < W channels
        const int64_t m = w - c;
        const vec gv = Cv::load_first(g + c, m);
        for (int64_t kh = lo; kh < hi; ++kh) {
          const int64_t ih = start_h + kh * p.dil_h;
          for (int64_t kw = wlo; kw < whi; ++kw) {
            const int64_t pos = ih * p.in_w + start_w + kw * p.dil_w;
            Cv::store_first(plane + pos * C + c, I::where_equal_first(id + c, pos, gv, m), m);
          }
        }
      }
    }
  }
};

}  // namespace

template <typename scalar_t>
void max_pool_backward_nhwc_windows(const PoolParams& p, const PoolPlan& plan, const scalar_t* go,
                                    const int64_t* idx, scalar_t* gi) {
  const NhwcWindows<scalar_t> k(p, plan.window_channels, go, idx, gi);
  at::parallel_for(0, k.tasks(), plan.backward_grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) k.task(t);
  });
}

#define INSTANTIATE(T)                                                                                  \
  template void max_pool_backward_nhwc_windows<T>(const PoolParams&, const PoolPlan&, const T*, const int64_t*, \
                                                  T*);
ATROUS_MAX_POOL_INSTANTIATE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

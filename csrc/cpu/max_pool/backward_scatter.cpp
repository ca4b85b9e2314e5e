// CPU max-pool backward, the scatter form: each task zeroes its part of grad_input and adds every
// gradient of its part at the position its index names, in increasing output position. That is
// torch's own order (its sequential scatter-add), so float results are bitwise torch's and each
// element's sum is independent of how the work is split. Unlike torch's backward, the zeroing is
// done by the task, on the part it is about to scatter into: that part is in cache when the
// gradients arrive, and no separate pass over grad_input is made. The half types sum in a float
// buffer of the task's part, converted once at the end.
//
// An index outside its plane drops its gradient (torch's, of a window without taps, may name one);
// any other is followed wherever it points, as torch's backward does (the gathers of backward.cpp
// look only inside each window: they differ only for indices no forward gives).
#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>

#include "../simd.h"
#include "kernels.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

// Where a task's sums go: grad_input itself, or (half types) a float buffer converted after.
template <typename scalar_t>
struct Sums {
  using acc_t = acc_type_t<scalar_t>;
  static constexpr bool kInPlace = std::is_same_v<acc_t, scalar_t>;
  Buffer<acc_t> buffer;
  explicit Sums(int64_t size) : buffer(kInPlace ? 0 : size) {}
  acc_t* at(scalar_t* gi) {
    if constexpr (kInPlace) {
      return gi;
    } else {
      return buffer.data();
    }
  }
};

// NCHW: a task is a range of planes, each zeroed then scattered into whole.
template <typename scalar_t>
void scatter_planes(const PoolParams& p, int64_t grain, const scalar_t* go, const int64_t* idx, scalar_t* gi) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t in = p.in_h * p.in_w, out = p.out_h * p.out_w;
  at::parallel_for(0, p.batch * p.channels, grain, [&](int64_t begin, int64_t end) {
    Sums<scalar_t> sums(in);
    for (int64_t plane = begin; plane < end; ++plane) {
      scalar_t* dst = gi + plane * in;
      acc_t* acc = sums.at(dst);
      std::fill(acc, acc + in, acc_t(0));
      const scalar_t* g = go + plane * out;
      const int64_t* id = idx + plane * out;
      for (int64_t o = 0; o < out; ++o) {
        const int64_t i = id[o];
        if (static_cast<uint64_t>(i) < static_cast<uint64_t>(in)) acc[i] += static_cast<acc_t>(g[o]);
      }
      if constexpr (!Sums<scalar_t>::kInPlace) {
        for (int64_t i = 0; i < in; ++i) dst[i] = static_cast<scalar_t>(acc[i]);
      }
    }
  });
}

// Channels_last: a task is one image's channels [c0, c0 + width), every pixel; its sums are kept
// [pixel][width] (in grad_input's own rows of C when summing in place).
template <typename scalar_t>
void scatter_pixels(const PoolParams& p, int64_t width, int64_t grain, const scalar_t* go, const int64_t* idx,
                    scalar_t* gi) {
  using acc_t = acc_type_t<scalar_t>;
  constexpr bool kInPlace = Sums<scalar_t>::kInPlace;
  const int64_t C = p.channels, in = p.in_h * p.in_w, out = p.out_h * p.out_w;
  const int64_t chunks = ceil_div(C, width);
  at::parallel_for(0, p.batch * chunks, grain, [&](int64_t begin, int64_t end) {
    Sums<scalar_t> sums(in * width);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / chunks, c0 = (task % chunks) * width, w = std::min(width, C - c0);
      scalar_t* dst = gi + n * in * C + c0;
      acc_t* acc = sums.at(dst);
      const int64_t stride = kInPlace ? C : w;  // between the sums of consecutive pixels
      if (stride == w) {  // one contiguous block
        std::fill(acc, acc + in * w, acc_t(0));
      } else {
        for (int64_t i = 0; i < in; ++i) std::fill(acc + i * stride, acc + i * stride + w, acc_t(0));
      }
      const scalar_t* g = go + n * out * C + c0;
      const int64_t* id = idx + n * out * C + c0;
      for (int64_t o = 0; o < out; ++o, g += C, id += C) {
        for (int64_t c = 0; c < w; ++c) {
          const int64_t i = id[c];
          if (static_cast<uint64_t>(i) < static_cast<uint64_t>(in)) acc[i * stride + c] += static_cast<acc_t>(g[c]);
        }
      }
      if constexpr (!kInPlace) {
        for (int64_t i = 0; i < in; ++i)
          for (int64_t c = 0; c < w; ++c) dst[i * C + c] = static_cast<scalar_t>(acc[i * w + c]);
      }
    }
  });
}

}  // namespace

template <typename scalar_t>
void max_pool_backward_scatter(const PoolParams& p, const PoolPlan& plan, const scalar_t* go, const int64_t* idx,
                               scalar_t* gi) {
  if (p.layout == Layout::kNHWC) {
    scatter_pixels(p, plan.scatter_channels, plan.backward_grain, go, idx, gi);
  } else {
    scatter_planes(p, plan.backward_grain, go, idx, gi);
  }
}

#define INSTANTIATE(T) \
  template void max_pool_backward_scatter<T>(const PoolParams&, const PoolPlan&, const T*, const int64_t*, T*);
ATROUS_MAX_POOL_INSTANTIATE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

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
// look only inside each window: they differ only for indices no forward gives), except that a
// channels_last image split in bands of rows follows an index only into the bands its window's
// rows meet (plan.cpp splits no image with a window without taps).
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

// Channels_last: a task is one band of an image's input rows (the whole image but where the batch
// is smaller than the thread count), every channel; its sums are kept [pixel][C]. It reads the
// output rows whose windows meet its band and takes the gradients whose index lies in the band.
// (Bands of rows, not chunks of each pixel's channels: two threads writing parts of the same
// pixels measured up to twice as slow as one, (1, 32, 56, 56) 3x3/2 0.066 against 0.037 ms.)
template <typename scalar_t>
void scatter_pixels(const PoolParams& p, int64_t bands, int64_t grain, const scalar_t* go, const int64_t* idx,
                    scalar_t* gi) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t C = p.channels, in = p.in_h * p.in_w, out = p.out_h * p.out_w;
  const int64_t band_rows = ceil_div(p.in_h, bands), span_h = (p.kernel_h - 1) * p.dil_h + 1;
  at::parallel_for(0, p.batch * bands, grain, [&](int64_t begin, int64_t end) {
    Sums<scalar_t> sums(band_rows * p.in_w * C);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / bands, r0 = (task % bands) * band_rows, r1 = std::min(p.in_h, r0 + band_rows);
      if (r0 >= r1) continue;
      const int64_t lo = r0 * p.in_w, size = (r1 - r0) * p.in_w;  // the band's positions: [lo, lo + size)
      scalar_t* dst = gi + (n * in + lo) * C;
      acc_t* acc = sums.at(dst);
      std::fill(acc, acc + size * C, acc_t(0));
      // The output rows whose windows meet rows [r0, r1): all of them for one band.
      const int64_t oh0 = bands == 1 ? 0 : std::max<int64_t>(0, ceil_div(r0 + p.pad_h - span_h + 1, p.stride_h));
      const int64_t oh1 = bands == 1 ? p.out_h : std::min(p.out_h, floor_div(r1 - 1 + p.pad_h, p.stride_h) + 1);
      const scalar_t* g = go + (n * out + oh0 * p.out_w) * C;
      const int64_t* id = idx + (n * out + oh0 * p.out_w) * C;
      for (int64_t o = oh0 * p.out_w; o < oh1 * p.out_w; ++o, g += C, id += C) {
        for (int64_t c = 0; c < C; ++c) {
          const int64_t i = id[c] - lo;
          if (static_cast<uint64_t>(i) < static_cast<uint64_t>(size)) acc[i * C + c] += static_cast<acc_t>(g[c]);
        }
      }
      if constexpr (!Sums<scalar_t>::kInPlace) {
        for (int64_t i = 0; i < size * C; ++i) dst[i] = static_cast<scalar_t>(acc[i]);
      }
    }
  });
}

}  // namespace

template <typename scalar_t>
void max_pool_backward_scatter(const PoolParams& p, const PoolPlan& plan, const scalar_t* go, const int64_t* idx,
                               scalar_t* gi) {
  if (p.layout == Layout::kNHWC) {
    scatter_pixels(p, plan.scatter_bands, plan.backward_grain, go, idx, gi);
  } else {
    scatter_planes(p, plan.backward_grain, go, idx, gi);
  }
}

#define INSTANTIATE(T) \
  template void max_pool_backward_scatter<T>(const PoolParams&, const PoolPlan&, const T*, const int64_t*, T*);
ATROUS_MAX_POOL_INSTANTIATE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

// The channels_last forward in row passes (row_passes.h) read straight from the input tensor: L
// channels of a pixel are one vector, so no tile, copy or padding is needed; each pass converts
// its loads from scalar_t and stores the results in the output's type. A task takes output rows
// of one image and a range of channel blocks, block by block or, on wide rows (a dilated row's
// wide phases too), in the plan's groups of blocks swept column by column; the last block, when
// the channels are not a multiple of L, goes with masked loads and stores.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "row_passes.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

template <typename scalar_t>
void forward_nhwc_rows(const DepthwiseParams& p, bool prefetch, int64_t column_blocks, const scalar_t* in,
                       const scalar_t* weight, const scalar_t* bias, scalar_t* out) {
  using acc_t = acc_type_t<scalar_t>;
  constexpr int L = Simd<acc_t>::kLanes;
  const int64_t C = p.out_channels, taps = p.kernel_h * p.kernel_w;  // m = 1: C input channels too
  const int64_t blocks = ceil_div(C, L), tail = C % L;
  const auto w = blocked_weight<acc_t, L>(weight, C, taps), b = blocked_weight<acc_t, L>(bias, C, 1);
  // Output rows as tasks; with few rows, also groups of channel blocks.
  const int64_t rows = p.batch * p.out_h;
  const int64_t groups = std::min(blocks, std::max<int64_t>(1, ceil_div(64, rows)));
  const int64_t per_group = ceil_div(blocks, groups);
  const int64_t row_step = p.dil_h * p.in_w * C;
  with_row_kernel(p.kernel_w, p.stride_w, p.out_w, p.dil_w, [&](auto KW, auto SW, auto NW) {
    constexpr int kKW = decltype(KW)::value, kSW = decltype(SW)::value, kNW = decltype(NW)::value;
    at::parallel_for(0, rows * groups, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t r = task / groups, g = task % groups;
        const int64_t n = r / p.out_h, oh = r % p.out_h;
        int64_t kh_lo, kh_hi;
        valid_taps(oh, p.stride_h, p.pad_h, p.dil_h, p.kernel_h, p.in_h, &kh_lo, &kh_hi);
        if (kh_lo >= kh_hi) continue;  // not reached: "same" padding leaves a row in every window
        const int64_t ih = oh * p.stride_h - p.pad_h + kh_lo * p.dil_h;  // the first kernel row read
        const scalar_t* src = in + ((n * p.in_h + ih) * p.in_w) * C;
        const int64_t ih_next = oh * p.stride_h - p.pad_h + (kh_hi - 1) * p.dil_h + 1;
        scalar_t* dst = out + ((n * p.out_h + oh) * p.out_w) * C;
        const int64_t blk0 = g * per_group, blk1 = std::min(blocks, (g + 1) * per_group);
        auto io_of = [&](int64_t blk) {
          const int64_t lanes = std::min<int64_t>(L, C - blk * L);
          RowIO<scalar_t, scalar_t, acc_t> io{src + blk * L, C, row_step, dst + blk * L, C,
                                              w.data() + (blk * taps + kh_lo * p.kernel_w) * L, b.data() + blk * L,
                                              0, kh_hi - kh_lo, lanes};
          // Prefetched: the input rows the next output row adds to the window, and the next output
          // row (rows streamed from beyond the cache across pixels of many channels defeat the
          // hardware prefetchers: each block's loads are C apart, the blocks' addresses interleaved).
          if (prefetch && ih_next < p.in_h) {
            io.pf = in + ((n * p.in_h + ih_next) * p.in_w) * C + blk * L;
            io.pf_step = p.in_w * C;
            io.pf_rows = std::min<int64_t>(p.stride_h, p.in_h - ih_next);
          }
          if (prefetch && oh + 1 < p.out_h) io.pf_out = dst + p.out_w * C + blk * L;
          return io;
        };
        if constexpr (kNW == kWideRow || kNW == kDilatedRow) {  // wide rows, or rows dilated along W
          if (column_blocks > 1) {  // the plan's groups of blocks, each swept column by column
            for (int64_t g0 = blk0; g0 < blk1; g0 += column_blocks) {
              const int64_t g1 = std::min(blk1, g0 + column_blocks);
              swept_row_outputs<kKW, kSW, kNW>(io_of, g0, g1, tail && g1 == blocks, p.out_w, p.dil_w);
            }
            continue;
          }
        }
        for (int64_t blk = blk0; blk < blk1; ++blk) {
          if (tail && blk == blocks - 1) {
            row_outputs<kKW, kSW, kNW, true>(io_of(blk), p.out_w, p.dil_w);
          } else {
            row_outputs<kKW, kSW, kNW, false>(io_of(blk), p.out_w, p.dil_w);
          }
        }
      }
    });
  });
}

// The weight gradient. With block_group = 0 a task sums its band of output rows of one image over
// every channel block into its own [block][tap][L] sums, and the tasks' sums are then added in task
// order (images, then bands); with block_group = g a task sums every image and row of its g
// channel blocks, images then rows, straight into the one set of sums. Either way a fixed order
// whatever the number of threads.
template <typename scalar_t>
void backward_weight_nhwc_rows(const DepthwiseParams& p, bool prefetch, int64_t block_group, const scalar_t* go,
                               const scalar_t* in, scalar_t* gw) {
  using acc_t = acc_type_t<scalar_t>;
  constexpr int L = Simd<acc_t>::kLanes;
  const int64_t C = p.out_channels, taps = p.kernel_h * p.kernel_w;
  const int64_t blocks = ceil_div(C, L), tail = C % L;
  const bool by_blocks = block_group > 0;
  const int64_t per_group = by_blocks ? block_group : blocks, groups = ceil_div(blocks, per_group);
  const int64_t bands = by_blocks ? 1 : split_rows(p.batch, p.out_h), rows_per = ceil_div(p.out_h, bands);
  const int64_t row_tasks = by_blocks ? 1 : p.batch * bands, per_task = blocks * taps * L;
  Buffer<acc_t> partial(row_tasks * per_task, acc_t(0));
  const int64_t row_step = p.dil_h * p.in_w * C;
  with_row_kernel(p.kernel_w, p.stride_w, p.out_w, p.dil_w, [&](auto KW, auto SW, auto NW) {
    constexpr int kKW = decltype(KW)::value, kSW = decltype(SW)::value, kNW = decltype(NW)::value;
    at::parallel_for(0, groups * row_tasks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t group = task / row_tasks, rt = task % row_tasks;
        const int64_t blk0 = group * per_group, blk1 = std::min(blocks, blk0 + per_group);
        // Rows n * out_h + oh: every image's with blocks, else one band of one image's.
        const int64_t oh0 = (rt % bands) * rows_per, oh1 = std::min(p.out_h, oh0 + rows_per);
        const int64_t r0 = by_blocks ? 0 : (rt / bands) * p.out_h + oh0;
        const int64_t r1 = by_blocks ? p.batch * p.out_h : r0 + (oh1 - oh0);
        acc_t* sums = partial.data() + rt * per_task;
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t n = r / p.out_h, oh = r % p.out_h;
          int64_t kh_lo, kh_hi;
          valid_taps(oh, p.stride_h, p.pad_h, p.dil_h, p.kernel_h, p.in_h, &kh_lo, &kh_hi);
          if (kh_lo >= kh_hi) continue;
          const int64_t ih = oh * p.stride_h - p.pad_h + kh_lo * p.dil_h;
          const scalar_t* x = in + ((n * p.in_h + ih) * p.in_w) * C;
          const scalar_t* g = go + ((n * p.out_h + oh) * p.out_w) * C;
          const int64_t ih_next = oh * p.stride_h - p.pad_h + (kh_hi - 1) * p.dil_h + 1;
          for (int64_t blk = blk0; blk < blk1; ++blk) {
            WeightIO<scalar_t, acc_t> io{g + blk * L, C, x + blk * L, C, row_step,
                                         sums + (blk * taps + kh_lo * p.kernel_w) * L, kh_hi - kh_lo,
                                         std::min<int64_t>(L, C - blk * L)};
            if (prefetch && ih_next < p.in_h) {  // as in the forward
              io.pf = in + ((n * p.in_h + ih_next) * p.in_w) * C + blk * L;
              io.pf_step = p.in_w * C;
              io.pf_rows = std::min<int64_t>(p.stride_h, p.in_h - ih_next);
            }
            if (prefetch && oh + 1 < p.out_h) io.pf_g = g + p.out_w * C + blk * L;
            if (tail && blk == blocks - 1) {
              weight_row<kKW, kSW, kNW, true>(io, p.out_w, p.dil_w);
            } else {
              weight_row<kKW, kSW, kNW, false>(io, p.out_w, p.dil_w);
            }
          }
        }
      }
    });
  });
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      for (int64_t tap = 0; tap < taps; ++tap) {
        auto sum = Simd<acc_t>::broadcast(0);
        for (int64_t task = 0; task < row_tasks; ++task)
          sum += Simd<acc_t>::load(partial.data() + task * per_task + (blk * taps + tap) * L);
        for (int64_t j = 0; j < std::min<int64_t>(L, C - blk * L); ++j)
          gw[(blk * L + j) * taps + tap] = static_cast<scalar_t>(sum[j]);
      }
    }
  });
}

#define ATROUS_NHWC_ROWS(T)                                                                      \
  template void forward_nhwc_rows<T>(const DepthwiseParams&, bool, int64_t, const T*, const T*, const T*, T*); \
  template void backward_weight_nhwc_rows<T>(const DepthwiseParams&, bool, int64_t, const T*, const T*, T*);
ATROUS_NHWC_ROWS(float)
ATROUS_NHWC_ROWS(double)
ATROUS_NHWC_ROWS(c10::Half)
ATROUS_NHWC_ROWS(c10::BFloat16)
#undef ATROUS_NHWC_ROWS

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

// CPU max-pool forward, NCHW: vectors along each output row. An output row's interior columns
// (every kw tap inside the input) go W at a time, four blocks of W in flight: for each tap in
// torch's scan order, the W input values it reads (contiguous for stride 1; for stride 2 the even
// and odd lanes of 2W contiguous values, which serve two taps; gathered for larger strides)
// update a running maximum and its index lane by lane, with the same rule as the scalar scan
// (greater, or NaN). The row's border columns use the scalar scan. Rows are the parallel unit, so
// batch 1 spreads over every thread.
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>

#include "../simd.h"
#include "kernels.h"
#include "window.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

// How the W lanes of a block read their input columns for one tap.
enum class Cols {
  kUnit,     // stride 1: W contiguous values
  kPairs,    // stride 2, dilation 1: 2W contiguous values give the taps kw = 2q (even lanes) and
             // kw = 2q + 1 (odd lanes) at once
  kStrided,  // any other stride or dilation: the even lanes of 2W values (stride 2), or gathered
};

template <typename scalar_t, bool kWithIndices>
struct NchwRows {
  using acc_t = acc_type_t<scalar_t>;
  using S = Simd<acc_t>;
  using C = Cast<scalar_t>;
  using I = IntLanes<acc_t>;
  using vec = typename S::vec;
  using ivec = typename I::lanes;
  static constexpr int W = S::kLanes;
  static constexpr int kBlocks = 4;  // blocks of W outputs in flight (independent running maxima)

  const PoolParams& p;
  const scalar_t* in;
  const scalar_t* in_end;  // loads must not pass it
  scalar_t* out;
  int64_t* idx;
  int64_t col_lo = 0, col_hi = 0;  // interior output columns: every kw tap inside the input
  ivec lane_offsets;               // {0, sW, 2 sW, ...}
  Cols cols = Cols::kStrided;

  NchwRows(const PoolParams& p_, const scalar_t* in_, int64_t in_numel, scalar_t* out_, int64_t* idx_)
      : p(p_), in(in_), in_end(in_ + in_numel), out(out_), idx(idx_) {
    // ow * sW - pW >= 0 and ow * sW - pW + (kW - 1) dW <= W - 1.
    col_lo = std::min(p.out_w, ceil_div(p.pad_w, p.stride_w));
    const int64_t last = p.in_w - 1 + p.pad_w - (p.kernel_w - 1) * p.dil_w;
    col_hi = last < 0 ? 0 : std::min(p.out_w, last / p.stride_w + 1);
    if (col_hi < col_lo) col_hi = col_lo;
    lane_offsets = I::iota(p.stride_w);
#ifdef ATROUS_HAVE_SHUFFLEVECTOR
    if (p.stride_w == 2 && p.dil_w == 1) cols = Cols::kPairs;
#endif
    if (p.stride_w == 1) cols = Cols::kUnit;
  }

  // The 2W values from src, for a block of n (<= W) lanes whose taps read `count` (2n - 1 for the
  // even lanes alone, 2n with the odd ones) of them: no lane past those is loaded in a partial
  // block, and in a full one the second W stop short of in_end (lane 2W - 1 is read only where an
  // odd-lane tap needs it, and then it lies inside the input).
  template <bool kFull>
  void load_pair(const scalar_t* src, int64_t count, vec* a, vec* b) const {
    if (kFull) {
      *a = C::load(src);
      *b = src + 2 * W <= in_end ? C::load(src + W) : C::load_first(src + W, W - 1);
    } else {
      *a = C::load_first(src, std::min<int64_t>(W, count));
      *b = C::load_first(src + W, std::max<int64_t>(0, count - W));
    }
  }

  // n (<= W) input values at stride sW from src, in the first n lanes.
  template <bool kFull>
  vec load_strided(const scalar_t* src, int64_t n) const {
#ifdef ATROUS_HAVE_SHUFFLEVECTOR
    if (p.stride_w == 2) {
      vec a, b;
      load_pair<kFull>(src, 2 * n - 1, &a, &b);
      return even_lanes<vec, W>(a, b);
    }
#endif
    vec v = vec{};
    for (int j = 0; j < (kFull ? W : n); ++j) v[j] = static_cast<acc_t>(src[j * p.stride_w]);
    return v;
  }

  // torch's rule, lane by lane: a greater value or a NaN takes the lead.
  static void update(vec& m, ivec& at, vec v, int64_t first_pos, ivec lane_offsets) {
    const ivec take = (v > m) | (v != v);
    m = take ? v : m;
    if constexpr (kWithIndices) at = take ? I::broadcast(first_pos) + lane_offsets : at;
  }

  // B blocks of W output columns from ow0 of one output row, all interior; with B = 0, one block
  // of the n < W columns from ow0.
  template <Cols M, int kB>
  void blocks(const scalar_t* plane_in, scalar_t* row_out, int64_t* row_idx, const WindowTaps& t,
              int64_t ow0, int64_t n = W) const {
    constexpr bool kFull = kB > 0;
    constexpr int B = kFull ? kB : 1;
    const int64_t w_start = ow0 * p.stride_w - p.pad_w, block_step = W * p.stride_w;
    const ivec offs = lane_offsets;
    vec m[B];
    ivec at[B];
    for (int b = 0; b < B; ++b) {
      m[b] = S::broadcast(-std::numeric_limits<acc_t>::infinity());
      at[b] = I::broadcast((t.h_start + t.kh0 * p.dil_h) * p.in_w + w_start + b * block_step) + offs;
    }
    for (int64_t kh = t.kh0; kh < t.kh1; ++kh) {
      const int64_t ih = t.h_start + kh * p.dil_h;
      const int64_t row_pos = ih * p.in_w + w_start;
      const scalar_t* src = plane_in + row_pos;
      if constexpr (M == Cols::kPairs) {
#ifdef ATROUS_HAVE_SHUFFLEVECTOR
        for (int64_t kw = 0; kw < p.kernel_w; kw += 2) {
          for (int b = 0; b < B; ++b) {
            vec lo, hi;
            load_pair<kFull>(src + kw + b * block_step, kw + 1 < p.kernel_w ? 2 * n : 2 * n - 1,
                             &lo, &hi);
            const int64_t pos = row_pos + kw + b * block_step;
            update(m[b], at[b], even_lanes<vec, W>(lo, hi), pos, offs);
            if (kw + 1 < p.kernel_w) update(m[b], at[b], odd_lanes<vec, W>(lo, hi), pos + 1, offs);
          }
        }
#endif
      } else {
        for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
          const int64_t off = kw * p.dil_w;
          for (int b = 0; b < B; ++b) {
            const scalar_t* s = src + off + b * block_step;
            const vec v = M != Cols::kUnit ? load_strided<kFull>(s, n)
                          : kFull         ? C::load(s)
                                          : C::load_first(s, n);
            update(m[b], at[b], v, row_pos + off + b * block_step, offs);
          }
        }
      }
    }
    if constexpr (!kFull) {
      C::store_first(row_out + ow0, m[0], n);
      if constexpr (kWithIndices) I::store_wide_first(row_idx + ow0, at[0], n);
      return;
    }
    for (int b = 0; b < B; ++b) {
      C::store(row_out + ow0 + b * W, m[b]);
      if constexpr (kWithIndices) I::store_wide(row_idx + ow0 + b * W, at[b]);
    }
  }

  void scalar_column(const scalar_t* plane_in, scalar_t* row_out, int64_t* row_idx, int64_t oh,
                     int64_t ow) const {
    acc_t m;
    int64_t at;
    scan_window(p, WindowTaps(p, oh, ow), plane_in, p.in_w, 1, &m, &at);
    row_out[ow] = static_cast<scalar_t>(m);
    if constexpr (kWithIndices) row_idx[ow] = at;
  }

  // The interior columns of one output row: kBlocks blocks at a time, then single blocks, the last
  // one ending at col_hi (recomputing a few columns), or for an interior narrower than a block,
  // one block of fewer lanes.
  template <Cols M>
  void interior(const scalar_t* plane_in, scalar_t* row_out, int64_t* row_idx, int64_t oh) const {
    const WindowTaps t(p, oh, col_lo);
    int64_t ow = col_lo;
    for (; ow + kBlocks * W <= col_hi; ow += kBlocks * W)
      blocks<M, kBlocks>(plane_in, row_out, row_idx, t, ow);
    for (; ow + W <= col_hi; ow += W) blocks<M, 1>(plane_in, row_out, row_idx, t, ow);
    if (ow < col_hi && col_hi - col_lo >= W) {
      blocks<M, 1>(plane_in, row_out, row_idx, t, col_hi - W);
    } else if (ow < col_hi) {
      blocks<M, 0>(plane_in, row_out, row_idx, t, ow, col_hi - ow);
    }
  }

  // Output row `r` (= plane * oH + oh).
  void row(int64_t r) const {
    const int64_t plane = r / p.out_h, oh = r % p.out_h;
    const scalar_t* plane_in = in + plane * p.in_h * p.in_w;
    scalar_t* row_out = out + r * p.out_w;
    int64_t* row_idx = kWithIndices ? idx + r * p.out_w : nullptr;
    switch (cols) {
      case Cols::kUnit: interior<Cols::kUnit>(plane_in, row_out, row_idx, oh); break;
      case Cols::kPairs: interior<Cols::kPairs>(plane_in, row_out, row_idx, oh); break;
      case Cols::kStrided: interior<Cols::kStrided>(plane_in, row_out, row_idx, oh); break;
    }
    for (int64_t c = 0; c < col_lo; ++c) scalar_column(plane_in, row_out, row_idx, oh, c);
    for (int64_t c = col_hi; c < p.out_w; ++c) scalar_column(plane_in, row_out, row_idx, oh, c);
  }
};

template <typename scalar_t, bool kWithIndices>
void run_rows(const PoolParams& p, const PoolPlan& plan, const scalar_t* in, scalar_t* out, int64_t* idx) {
  const NchwRows<scalar_t, kWithIndices> k(p, in, p.batch * p.channels * p.in_h * p.in_w, out, idx);
  at::parallel_for(0, p.batch * p.channels * p.out_h, plan.forward_grain,
                   [&](int64_t begin, int64_t end) {
                     for (int64_t r = begin; r < end; ++r) k.row(r);
                   });
}

}  // namespace

template <typename scalar_t>
void max_pool_forward_nchw_rows(const PoolParams& p, const PoolPlan& plan, const scalar_t* in, scalar_t* out,
                                int64_t* idx) {
  if (p.with_indices) {
    run_rows<scalar_t, true>(p, plan, in, out, idx);
  } else {
    run_rows<scalar_t, false>(p, plan, in, out, nullptr);
  }
}

#define INSTANTIATE(T) \
  template void max_pool_forward_nchw_rows<T>(const PoolParams&, const PoolPlan&, const T*, T*, int64_t*);
ATROUS_MAX_POOL_INSTANTIATE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

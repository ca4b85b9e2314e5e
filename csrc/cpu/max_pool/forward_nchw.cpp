// CPU max-pool forward, NCHW: vectors along each output row. An output row's interior columns
// (every kw tap inside the input) go W at a time: for each tap in torch's scan order, the W input
// values it reads (contiguous for stride 1, the even lanes of 2W for stride 2, gathered for larger
// strides) update a running maximum and its index lane by lane, with the same rule as the scalar
// scan (greater, or NaN). The row's border columns use the scalar scan. Rows are the parallel
// unit, so batch 1 spreads over every thread.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>

#include "../simd.h"
#include "kernels.h"
#include "window.h"

namespace atrous {
namespace cpu {
namespace {

template <typename scalar_t, bool kWithIndices>
struct NchwRows {
  using acc_t = acc_type_t<scalar_t>;
  using S = Simd<acc_t>;
  using C = Cast<scalar_t>;
  using I = IntLanes<acc_t>;
  using vec = typename S::vec;
  using ivec = typename I::lanes;
  static constexpr int W = S::kLanes;

  const PoolParams& p;
  const scalar_t* in;
  scalar_t* out;
  int64_t* idx;
  int64_t col_lo = 0, col_hi = 0;  // interior output columns: every kw tap inside the input
  ivec lane_offsets;               // {0, sW, 2 sW, ...}

  NchwRows(const PoolParams& p_, const scalar_t* in_, scalar_t* out_, int64_t* idx_)
      : p(p_), in(in_), out(out_), idx(idx_) {
    // ow * sW - pW >= 0 and ow * sW - pW + (kW - 1) dW <= W - 1.
    col_lo = std::min(p.out_w, ceil_div(p.pad_w, p.stride_w));
    const int64_t last = p.in_w - 1 + p.pad_w - (p.kernel_w - 1) * p.dil_w;
    col_hi = last < 0 ? 0 : std::min(p.out_w, last / p.stride_w + 1);
    if (col_hi < col_lo) col_hi = col_lo;
    lane_offsets = I::iota(p.stride_w);
  }

  // W input values at stride sW from src.
  vec load_columns(const scalar_t* src) const {
    if (p.stride_w == 1) return C::load(src);
#ifdef ATROUS_HAVE_SHUFFLEVECTOR
    if (p.stride_w == 2) {
      // Lane W-1 reads src[2W - 2]: the second load stops there (src[2W - 1] may be past the input).
      return even_lanes<vec, W>(C::load(src), C::load_first(src + W, W - 1));
    }
#endif
    vec v;
    for (int j = 0; j < W; ++j) v[j] = static_cast<acc_t>(src[j * p.stride_w]);
    return v;
  }

  // Output columns [ow0, ow0 + W) of row oh in one plane, all interior.
  void columns(const scalar_t* plane_in, scalar_t* row_out, int64_t* row_idx, const WindowTaps& t,
               int64_t ow0) const {
    const int64_t w_start = ow0 * p.stride_w - p.pad_w;
    vec m = S::broadcast(-std::numeric_limits<acc_t>::infinity());
    ivec at = I::broadcast((t.h_start + t.kh0 * p.dil_h) * p.in_w + w_start) + lane_offsets;
    for (int64_t kh = t.kh0; kh < t.kh1; ++kh) {
      const int64_t ih = t.h_start + kh * p.dil_h;
      const scalar_t* src = plane_in + ih * p.in_w + w_start;
      for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
        const vec v = load_columns(src + kw * p.dil_w);
        const ivec take = (v > m) | (v != v);
        m = take ? v : m;
        if constexpr (kWithIndices) {
          const ivec pos = I::broadcast(ih * p.in_w + w_start + kw * p.dil_w) + lane_offsets;
          at = take ? pos : at;
        }
      }
    }
    C::store(row_out + ow0, m);
    if constexpr (kWithIndices) I::store_wide(row_idx + ow0, at);
  }

  void scalar_column(const scalar_t* plane_in, scalar_t* row_out, int64_t* row_idx, int64_t oh,
                     int64_t ow) const {
    acc_t m;
    int64_t at;
    scan_window(p, WindowTaps(p, oh, ow), plane_in, p.in_w, 1, &m, &at);
    row_out[ow] = static_cast<scalar_t>(m);
    if constexpr (kWithIndices) row_idx[ow] = at;
  }

  // Output row `r` (= plane * oH + oh).
  void row(int64_t r) const {
    const int64_t plane = r / p.out_h, oh = r % p.out_h;
    const scalar_t* plane_in = in + plane * p.in_h * p.in_w;
    scalar_t* row_out = out + r * p.out_w;
    int64_t* row_idx = kWithIndices ? idx + r * p.out_w : nullptr;
    const WindowTaps t(p, oh, col_lo);
    int64_t ow = col_lo;
    for (; ow + W <= col_hi; ow += W) columns(plane_in, row_out, row_idx, t, ow);
    if (ow < col_hi && col_hi - col_lo >= W) {
      // The last interior columns as one block ending at col_hi (recomputing a few).
      columns(plane_in, row_out, row_idx, t, col_hi - W);
      ow = col_hi;
    }
    for (; ow < col_hi; ++ow) scalar_column(plane_in, row_out, row_idx, oh, ow);
    for (int64_t c = 0; c < col_lo; ++c) scalar_column(plane_in, row_out, row_idx, oh, c);
    for (int64_t c = col_hi; c < p.out_w; ++c) scalar_column(plane_in, row_out, row_idx, oh, c);
  }
};

template <typename scalar_t, bool kWithIndices>
void run_rows(const PoolParams& p, const PoolPlan& plan, const at::Tensor& input,
              at::Tensor& output, at::Tensor& indices) {
  const NchwRows<scalar_t, kWithIndices> k(
      p, input.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>(),
      kWithIndices ? indices.mutable_data_ptr<int64_t>() : nullptr);
  at::parallel_for(0, p.batch * p.channels * p.out_h, plan.forward_grain,
                   [&](int64_t begin, int64_t end) {
                     for (int64_t r = begin; r < end; ++r) k.row(r);
                   });
}

}  // namespace

void max_pool_forward_nchw_rows(const PoolParams& p, const PoolPlan& plan, const at::Tensor& input,
                                at::Tensor& output, at::Tensor& indices) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                                  "atrous_max_pool_nchw", [&] {
    if (p.with_indices) {
      run_rows<scalar_t, true>(p, plan, input, output, indices);
    } else {
      run_rows<scalar_t, false>(p, plan, input, output, indices);
    }
  });
}

}  // namespace cpu
}  // namespace atrous

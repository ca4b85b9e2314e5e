// CPU max-pool backward, the gather form of csrc/common/pool_params.h: every grad_input element
// is written once, as the sum over the windows that contain it, in increasing output position, of
// the gradients whose index is its position (float accumulation for the half types). That is the
// order of torch's sequential scatter-add, so float results are bitwise torch's; no zero-fill
// pass, no atomics, and each element's result is independent of the thread count. Input rows are
// the parallel unit.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "../simd.h"
#include "kernels.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

// The windows along one axis containing each input position, in increasing order: position i's
// are list[start[i] .. start[i + 1]).
struct AxisWindows {
  Buffer<int64_t> start, list;
  AxisWindows(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
              int64_t n_windows)
      : start(in + 1) {
    Buffer<int64_t> buf(kernel);
    for (int64_t i = 0; i < in; ++i) {
      start[i] = static_cast<int64_t>(list.size());
      const int n = pool_windows_of(i, kernel, stride, pad, dilation, n_windows, buf.data());
      list.insert(list.end(), buf.begin(), buf.begin() + n);
    }
    start[in] = static_cast<int64_t>(list.size());
  }
  const int64_t* begin(int64_t i) const { return list.data() + start[i]; }
  const int64_t* end(int64_t i) const { return list.data() + start[i + 1]; }
};

// What every backward kernel reads and writes, and the windows containing each input row and column.
template <typename scalar_t>
struct BackwardData {
  using acc_t = acc_type_t<scalar_t>;
  const PoolParams& p;
  const scalar_t* go;
  const int64_t* idx;
  scalar_t* gi;
  AxisWindows rows, cols;

  BackwardData(const PoolParams& p_, const scalar_t* go_, const int64_t* idx_, scalar_t* gi_)
      : p(p_), go(go_), idx(idx_), gi(gi_),
        rows(p.in_h, p.kernel_h, p.stride_h, p.pad_h, p.dil_h, p.out_h),
        cols(p.in_w, p.kernel_w, p.stride_w, p.pad_w, p.dil_w, p.out_w) {}
};

template <typename scalar_t>
struct NchwGather : BackwardData<scalar_t> {
  using acc_t = acc_type_t<scalar_t>;
  using BackwardData<scalar_t>::BackwardData;
  using BackwardData<scalar_t>::p;
  using BackwardData<scalar_t>::go;
  using BackwardData<scalar_t>::idx;
  using BackwardData<scalar_t>::gi;
  using BackwardData<scalar_t>::rows;
  using BackwardData<scalar_t>::cols;
  int64_t buffer_size() const { return p.in_w; }

  // grad_input columns [w0, w1) of input row ih in one plane.
  void columns(int64_t plane, int64_t ih, int64_t w0, int64_t w1) const {
    const scalar_t* g = go + plane * p.out_h * p.out_w;
    const int64_t* id = idx + plane * p.out_h * p.out_w;
    scalar_t* dst = gi + (plane * p.in_h + ih) * p.in_w;
    for (int64_t iw = w0; iw < w1; ++iw) {
      const int64_t pos = ih * p.in_w + iw;
      acc_t acc = 0;
      for (const int64_t* oh = rows.begin(ih); oh != rows.end(ih); ++oh) {
        for (const int64_t* ow = cols.begin(iw); ow != cols.end(iw); ++ow) {
          const int64_t o = *oh * p.out_w + *ow;
          if (id[o] == pos) acc += static_cast<acc_t>(g[o]);
        }
      }
      dst[iw] = static_cast<scalar_t>(acc);
    }
  }

  void row(int64_t r, acc_t*) const { columns(r / p.in_h, r % p.in_h, 0, p.in_w); }
};

// Any NCHW geometry, one input row at a time: the row is summed in a buffer of acc_t from the
// output rows whose windows cover it, in increasing output position; each gradient goes to the
// column its index names if that column is a tap of its window (in this row), else nowhere. Per
// input row that is (windows covering it) x oW steps, against the per-element gather's
// (row windows) x (column windows) x W.
template <typename scalar_t>
struct NchwRowScatter : NchwGather<scalar_t> {
  using Base = NchwGather<scalar_t>;
  using acc_t = typename Base::acc_t;
  using Base::Base;
  using Base::p;

  void row(int64_t r, acc_t* buf) const {
    const int64_t plane = r / p.in_h, ih = r % p.in_h, span = (p.kernel_w - 1) * p.dil_w + 1;
    std::fill(buf, buf + p.in_w, acc_t(0));
    for (const int64_t* oh = this->rows.begin(ih); oh != this->rows.end(ih); ++oh) {
      const scalar_t* g = this->go + (plane * p.out_h + *oh) * p.out_w;
      const int64_t* id = this->idx + (plane * p.out_h + *oh) * p.out_w;
      const int64_t row_pos = ih * p.in_w;
      for (int64_t ow = 0; ow < p.out_w; ++ow) {
        const int64_t col = id[ow] - row_pos, first = ow * p.stride_w - p.pad_w;
        const int64_t lo = std::max<int64_t>(first, 0), hi = std::min(first + span, p.in_w);
        if (col >= lo && col < hi && (p.dil_w == 1 || (col - first) % p.dil_w == 0))
          buf[col] += static_cast<acc_t>(g[ow]);
      }
    }
    scalar_t* dst = this->gi + r * p.in_w;
    for (int64_t iw = 0; iw < p.in_w; ++iw) dst[iw] = static_cast<scalar_t>(buf[iw]);
  }
};

// The row scatter in vectors of W output columns: split by phase (column = j * sW + r), tap kw's
// contributions go to phase r_kw at j = ow + q_kw (kw * dW - pW = q_kw * sW + r_kw), so each tap
// of a block of W windows is one masked vector add into its phase. Taps run in decreasing kw
// within a block and blocks in increasing ow, so every element still sums in increasing output
// position (bitwise the scalar row scatter). The phases are then woven into the row.
template <typename scalar_t>
struct NchwPhaseScatter : NchwGather<scalar_t> {
  using Base = NchwGather<scalar_t>;
  using acc_t = typename Base::acc_t;
  using S = Simd<acc_t>;
  using Cv = Cast<scalar_t>;
  using I = IntLanes<acc_t>;
  using vec = typename S::vec;
  using lanes = typename I::lanes;
  static constexpr int W = S::kLanes;
  using Base::p;

  int64_t margin = 0, phase_len = 0;  // each phase: margin slots, then j = 0, 1, ...

  NchwPhaseScatter(const PoolParams& p_, const scalar_t* go_, const int64_t* idx_, scalar_t* gi_)
      : Base(p_, go_, idx_, gi_) {
    margin = ceil_div(p.pad_w, p.stride_w);
    const int64_t reach = floor_div((p.kernel_w - 1) * p.dil_w - p.pad_w, p.stride_w);
    phase_len = margin + std::max(ceil_div(p.in_w, p.stride_w), ceil_div(p.out_w, W) * W + reach + 1);
  }
  int64_t buffer_size() const { return p.stride_w * phase_len; }

  void row(int64_t r, acc_t* buf) const {
    const int64_t plane = r / p.in_h, ih = r % p.in_h, span = (p.kernel_w - 1) * p.dil_w + 1;
    std::fill(buf, buf + buffer_size(), acc_t(0));
    const int64_t row_pos = ih * p.in_w;
    int64_t tail_idx[W];
    for (const int64_t* oh = this->rows.begin(ih); oh != this->rows.end(ih); ++oh) {
      const scalar_t* g = this->go + (plane * p.out_h + *oh) * p.out_w;
      const int64_t* id = this->idx + (plane * p.out_h + *oh) * p.out_w;
      for (int64_t ow0 = 0; ow0 < p.out_w; ow0 += W) {
        const int64_t n = std::min<int64_t>(W, p.out_w - ow0);
        const int64_t* ids = id + ow0;
        if (n < W) {  // past the row: an index no window matches
          for (int k = 0; k < W; ++k) tail_idx[k] = k < n ? id[ow0 + k] : -1 - row_pos - span;
          ids = tail_idx;
        }
        // Each lane's tap offset in its window (its index less the window's first column).
        const lanes at = I::offsets_within(ids, row_pos + ow0 * p.stride_w - p.pad_w, p.stride_w,
                                           span);
        const vec gv = n < W ? Cv::load_first(g + ow0, n) : Cv::load(g + ow0);
        for (int64_t kw = p.kernel_w - 1; kw >= 0; --kw) {
          const int64_t off = kw * p.dil_w - p.pad_w;
          const int64_t q = floor_div(off, p.stride_w), ph = off - q * p.stride_w;
          acc_t* dst = buf + ph * phase_len + margin + ow0 + q;
          const lanes hit = at == I::broadcast(kw * p.dil_w);
          S::store(dst, S::load(dst) + (hit ? gv : vec{}));
        }
      }
    }
    scalar_t* out = this->gi + r * p.in_w;
    for (int64_t ph = 0; ph < p.stride_w; ++ph) {  // weave the phases (no division per element)
      const acc_t* src = buf + ph * phase_len + margin;
      for (int64_t j = 0, iw = ph; iw < p.in_w; ++j, iw += p.stride_w) out[iw] = static_cast<scalar_t>(src[j]);
    }
  }
};

#ifdef ATROUS_HAVE_SHUFFLEVECTOR
// 2x2 windows at stride 2: input column iw lies in window iw / 2 only, so W input columns read
// W / 2 gradients and indices; each is compared with the even and the odd position of its pair,
// and the two masked halves interleave into the W results.
template <typename scalar_t>
struct NchwGather2x2 : NchwGather<scalar_t> {
  using Base = NchwGather<scalar_t>;
  using acc_t = typename Base::acc_t;
  using S = Simd<acc_t>;
  using Cv = Cast<scalar_t>;
  static constexpr int W = S::kLanes, H = W / 2;
  using half_vec = typename VecOf<acc_t, H>::type;
  using half_mask = typename VecOf<same_width_int_t<acc_t>, H>::type;
  using half_wide = typename VecOf<int64_t, H>::type;
  using Base::p;

  using Base::Base;

  template <int... J>
  static typename S::vec interleave(half_vec a, half_vec b, std::integer_sequence<int, J...>) {
    return __builtin_shufflevector(a, b, (J % 2 == 0 ? J / 2 : H + J / 2)...);
  }

  void row(int64_t r, acc_t*) const {
    const int64_t plane = r / p.in_h, ih = r % p.in_h, oh = ih / 2;
    if (oh >= p.out_h) {  // below the last window: no gradient
      Base::columns(plane, ih, 0, p.in_w);
      return;
    }
    const scalar_t* g = this->go + (plane * p.out_h + oh) * p.out_w;
    const int64_t* id = this->idx + (plane * p.out_h + oh) * p.out_w;
    scalar_t* dst = this->gi + (plane * p.in_h + ih) * p.in_w;
    const int64_t covered = std::min(p.in_w, 2 * p.out_w);  // columns inside a window
    half_wide even_pos;
    for (int k = 0; k < H; ++k) even_pos[k] = ih * p.in_w + 2 * k;
    int64_t iw = 0;
    for (; iw + W <= covered; iw += W) {
      half_vec gv;
      for (int k = 0; k < H; ++k) gv[k] = static_cast<acc_t>(g[iw / 2 + k]);
      half_wide iv;
      __builtin_memcpy(&iv, id + iw / 2, sizeof(iv));
      Cv::store(dst + iw, pair_block(gv, iv - (even_pos + iw)));
    }
    if (iw < covered) {  // the last n < W columns: as many gradients and indices as they need
      const int64_t n = covered - iw, pairs = (n + 1) / 2;
      half_vec gv = half_vec{};
      half_wide iv = -1 - half_wide{};
      for (int64_t k = 0; k < pairs; ++k) {
        gv[k] = static_cast<acc_t>(g[iw / 2 + k]);
        iv[k] = id[iw / 2 + k];
      }
      Cv::store_first(dst + iw, pair_block(gv, iv - (even_pos + iw)), n);
    }
    Base::columns(plane, ih, covered, p.in_w);  // columns past the last window: zero
  }

  // W results from H gradients and their indices less the pairs' even positions.
  static typename S::vec pair_block(half_vec gv, half_wide at_even) {
    const half_mask even = __builtin_convertvector(at_even == 0, half_mask);
    const half_mask odd = __builtin_convertvector(at_even == 1, half_mask);
    const half_vec zero = half_vec{};
    return interleave(even ? gv : zero, odd ? gv : zero, std::make_integer_sequence<int, W>{});
  }
};
#endif

// Windows strided by 2 or more along W (no dilation), overlapping or not: W input columns at a
// time, each lane gathering from the windows that contain its column. Those windows are
// consecutive, first[iw] .. first[iw] + count[iw] - 1, and for W columns they lie among the W
// outputs from the first column's first window (plan.cpp checks that): one load of those
// gradients and indices per covering output row, then, per window of a column (t), one permute of
// each to the lanes, a comparison of the index with the lane's position and a masked add. Output
// rows outer and t inner sum each element in increasing output position, as the scatter would.
template <typename scalar_t>
struct NchwWindowGather : NchwGather<scalar_t> {
  using Base = NchwGather<scalar_t>;
  using acc_t = typename Base::acc_t;
  using S = Simd<acc_t>;
  using Cv = Cast<scalar_t>;
  using I = IntLanes<acc_t>;
  using vec = typename S::vec;
  using lanes = typename I::lanes;
  using lane_t = same_width_int_t<acc_t>;
  static constexpr int W = S::kLanes;
  using Base::p;

  Buffer<lane_t> first, count;  // per input column, padded to whole vectors with count 0
  int64_t most = 0;             // windows of the column that has most
  const int64_t outputs = p.batch * p.channels * p.out_h * p.out_w;

  NchwWindowGather(const PoolParams& p_, const scalar_t* go_, const int64_t* idx_, scalar_t* gi_)
      : Base(p_, go_, idx_, gi_), first(ceil_div(p.in_w, W) * W), count(ceil_div(p.in_w, W) * W, 0) {
    // A column in no window (between windows, or past the last) takes the next column's first
    // window (out_w past the last), so that a block's first column has the least of its block.
    lane_t next = static_cast<lane_t>(p.out_w);
    for (int64_t iw = static_cast<int64_t>(first.size()) - 1; iw >= 0; --iw) {
      const int64_t n = iw < p.in_w ? this->cols.end(iw) - this->cols.begin(iw) : 0;
      if (n > 0) next = static_cast<lane_t>(*this->cols.begin(iw));
      first[iw] = next;
      count[iw] = static_cast<lane_t>(n);
      most = std::max(most, n);
    }
  }

  void row(int64_t r, acc_t*) const {
    switch (most) {  // the usual window counts unrolled
      case 1: return row_of<1>(r);
      case 2: return row_of<2>(r);
      case 3: return row_of<3>(r);
      default: return row_of<0>(r);
    }
  }

  // Input row r, its columns in at most kMost windows each (0: `most`).
  template <int kMost>
  void row_of(int64_t r) const {
    const int64_t plane = r / p.in_h, ih = r % p.in_h, n_windows = kMost > 0 ? kMost : most;
    scalar_t* dst = this->gi + r * p.in_w;
    const lanes lane = I::iota(1);
    for (int64_t iw0 = 0; iw0 < p.in_w; iw0 += W) {
      lanes fw, cnt;
      __builtin_memcpy(&fw, first.data() + iw0, sizeof(fw));
      __builtin_memcpy(&cnt, count.data() + iw0, sizeof(cnt));
      const int64_t base = first[iw0], m = std::min<int64_t>(W, p.out_w - base);
      const lanes rel = fw - static_cast<lane_t>(base);
      const lanes pos = I::broadcast(ih * p.in_w + iw0) + lane;
      vec acc = vec{};
      for (const int64_t* oh = this->rows.begin(ih); m > 0 && oh != this->rows.end(ih); ++oh) {
        const int64_t o = (plane * p.out_h + *oh) * p.out_w + base;
        // Past the row's end, lanes no column selects: read them where the tensor goes on.
        const int64_t k = o + W <= outputs ? W : m;
        const vec gv = k < W ? Cv::load_first(this->go + o, k) : Cv::load(this->go + o);
        const lanes iv = I::narrow(this->idx + o, k);
        for (int64_t t = 0; t < n_windows; ++t) {
          const lanes sel = rel + static_cast<lane_t>(t);
          const lanes hit = (I::broadcast(t) < cnt) & (I::permute(iv, sel) == pos);
          acc += hit ? I::permute(gv, sel) : vec{};
        }
      }
      const int64_t n = std::min<int64_t>(W, p.in_w - iw0);
      if (n < W) {
        Cv::store_first(dst + iw0, acc, n);
      } else {
        Cv::store(dst + iw0, acc);
      }
    }
  }
};

// Runs kernel.row(r, buffer of the kernel's buffer_size() acc_t) over the rows.
template <typename Kernel, typename scalar_t>
void run(const PoolParams& p, int64_t rows, int64_t grain, const scalar_t* go, const int64_t* idx, scalar_t* gi) {
  const Kernel k(p, go, idx, gi);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    Buffer<typename Kernel::acc_t> buf(k.buffer_size());
    for (int64_t r = begin; r < end; ++r) k.row(r, buf.data());
  });
}

}  // namespace

template <typename scalar_t>
void max_pool_backward_nchw(const PoolParams& p, const PoolPlan& plan, const scalar_t* go, const int64_t* idx,
                            scalar_t* gi) {
  const int64_t rows = p.batch * p.channels * p.in_h;
#ifdef ATROUS_HAVE_SHUFFLEVECTOR
  if (plan.backward == PoolBackward::kNchwGather2x2) {
    run<NchwGather2x2<scalar_t>>(p, rows, plan.backward_grain, go, idx, gi);
    return;
  }
#endif
  if (plan.backward == PoolBackward::kNchwWindowGather) {
    run<NchwWindowGather<scalar_t>>(p, rows, plan.backward_grain, go, idx, gi);
    return;
  }
  if (plan.backward == PoolBackward::kNchwPhaseScatter) {
    run<NchwPhaseScatter<scalar_t>>(p, rows, plan.backward_grain, go, idx, gi);
    return;
  }
  run<NchwRowScatter<scalar_t>>(p, rows, plan.backward_grain, go, idx, gi);
}

#define INSTANTIATE(T)                                                                                   \
  template void max_pool_backward_nchw<T>(const PoolParams&, const PoolPlan&, const T*, const int64_t*, T*);
ATROUS_MAX_POOL_INSTANTIATE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

// CPU kernels for the depthwise convolution: forward, grad_input and grad_weight, each for NCHW and
// channels_last (NHWC).
//
// Every kernel accumulates one row of results in a small buffer of the accumulation type (float for
// the half types, else the scalar type): all bounds are hoisted out of the inner loops (see
// valid_out_range), so the inner loops are branch-free, unit-stride (or constant-stride) and
// vectorise. Every result element is produced by exactly one task in a fixed order, so results do
// not depend on the number of threads, and no atomics or shared accumulators are needed.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../common/depthwise_host.h"

namespace atrous {
namespace {

template <typename T>
using acc_type_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// Strides are template parameters for 1 and 2 (S > 0) so the compiler can vectorise their loads;
// S == 0 is the run-time stride fallback.
template <int S>
inline int64_t stride_of(int64_t s) {
  return S > 0 ? S : s;
}

// a[i] += w * x[i * s]
template <int S, typename acc_t>
inline void axpy_gather(acc_t* __restrict a, const acc_t* __restrict x, acc_t w, int64_t n,
                        int64_t s_rt) {
  const int64_t s = stride_of<S>(s_rt);
  for (int64_t i = 0; i < n; ++i) a[i] += w * x[i * s];
}

// a[i * s] += w * x[i]
template <int S, typename acc_t>
inline void axpy_scatter(acc_t* __restrict a, const acc_t* __restrict x, acc_t w, int64_t n,
                         int64_t s_rt) {
  const int64_t s = stride_of<S>(s_rt);
  for (int64_t i = 0; i < n; ++i) a[i * s] += w * x[i];
}

// a[i] += g[i] * x[i * s]
template <int S, typename acc_t>
inline void mul_acc_gather(acc_t* __restrict a, const acc_t* __restrict g,
                           const acc_t* __restrict x, int64_t n, int64_t s_rt) {
  const int64_t s = stride_of<S>(s_rt);
  for (int64_t i = 0; i < n; ++i) a[i] += g[i] * x[i * s];
}

// Rows of a plane as acc_t: a pointer into the tensor when scalar_t is acc_t, otherwise converted
// into a buffer once per task.
template <typename scalar_t, typename acc_t>
struct RowSource {
  const scalar_t* base = nullptr;
  int64_t row_len = 0;
  std::vector<acc_t> buf;
  int64_t first = 0;

  // Makes rows [r0, r1) of the plane at `plane` available.
  void load(const scalar_t* plane, int64_t len, int64_t r0, int64_t r1) {
    base = plane;
    row_len = len;
    first = r0;
    if constexpr (!std::is_same_v<scalar_t, acc_t>) {
      buf.resize(std::max<int64_t>(r1 - r0, 0) * len);
      const scalar_t* src = plane + r0 * len;
      for (int64_t i = 0, n = (r1 - r0) * len; i < n; ++i) buf[i] = static_cast<acc_t>(src[i]);
    }
  }
  const acc_t* row(int64_t r) const {
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      return base + r * row_len;
    } else {
      return buf.data() + (r - first) * row_len;
    }
  }
};

template <typename scalar_t, typename acc_t>
inline void store_row(scalar_t* __restrict dst, const acc_t* __restrict src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<scalar_t>(src[i]);
}

// Enough tasks for load balance over any thread count, still a fixed function of the shape.
inline int64_t split_rows(int64_t units, int64_t rows) {
  const int64_t want = 64;
  if (units >= want) return 1;
  return std::min<int64_t>(rows, ceil_div(want, std::max<int64_t>(units, 1)));
}

// Weight as acc_t, [Co][kH*kW] (as stored) or transposed to [kH*kW][Co] for NHWC.
template <typename scalar_t, typename acc_t>
std::vector<acc_t> weight_as_acc(const at::Tensor& w, const DepthwiseParams& p, bool transposed) {
  const int64_t taps = p.kernel_h * p.kernel_w;
  const scalar_t* src = w.data_ptr<scalar_t>();
  std::vector<acc_t> out(taps * p.out_channels);
  for (int64_t co = 0; co < p.out_channels; ++co)
    for (int64_t t = 0; t < taps; ++t)
      out[transposed ? t * p.out_channels + co : co * taps + t] =
          static_cast<acc_t>(src[co * taps + t]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// NCHW
// ---------------------------------------------------------------------------------------------

template <int S, typename scalar_t>
void forward_nchw(const DepthwiseParams& p, const scalar_t* in, const at::Tensor& weight,
                  const scalar_t* bias, scalar_t* out) {
  using acc_t = acc_type_t<scalar_t>;
  const auto w = weight_as_acc<scalar_t, acc_t>(weight, p, false);
  const int64_t planes = p.batch * p.out_channels;
  const int64_t rblocks = split_rows(planes, p.out_h);
  const int64_t rows_per = ceil_div(p.out_h, rblocks);
  const int64_t taps = p.kernel_h * p.kernel_w;
  at::parallel_for(0, planes * rblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(p.out_w);
    RowSource<scalar_t, acc_t> src;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task / rblocks;
      const int64_t oh0 = (task % rblocks) * rows_per;
      const int64_t oh1 = std::min(p.out_h, oh0 + rows_per);
      if (oh0 >= oh1) continue;
      const int64_t n = plane / p.out_channels, co = plane % p.out_channels;
      const scalar_t* in_plane = in + (n * p.channels + co / p.mult) * p.in_h * p.in_w;
      const int64_t ih_lo = std::max<int64_t>(0, oh0 * p.stride_h - p.pad_h);
      const int64_t ih_hi = std::min<int64_t>(
          p.in_h, (oh1 - 1) * p.stride_h - p.pad_h + (p.kernel_h - 1) * p.dil_h + 1);
      src.load(in_plane, p.in_w, ih_lo, std::max(ih_lo, ih_hi));
      const acc_t* wc = w.data() + co * taps;
      const acc_t b = bias ? static_cast<acc_t>(bias[co]) : acc_t(0);
      scalar_t* out_plane = out + plane * p.out_h * p.out_w;
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        std::fill(acc.begin(), acc.end(), b);
        for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
          const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
          if (ih < 0 || ih >= p.in_h) continue;
          const acc_t* row = src.row(ih);
          for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
            const int64_t off = kw * p.dil_w - p.pad_w;
            int64_t lo, hi;
            valid_out_range(off, p.stride_w, p.in_w, p.out_w, &lo, &hi);
            axpy_gather<S>(acc.data() + lo, row + lo * p.stride_w + off, wc[kh * p.kernel_w + kw],
                           hi - lo, p.stride_w);
          }
        }
        store_row(out_plane + oh * p.out_w, acc.data(), p.out_w);
      }
    }
  });
}

template <int S, typename scalar_t>
void backward_input_nchw(const DepthwiseParams& p, const scalar_t* go, const at::Tensor& weight,
                         scalar_t* gi) {
  using acc_t = acc_type_t<scalar_t>;
  const auto w = weight_as_acc<scalar_t, acc_t>(weight, p, false);
  const int64_t planes = p.batch * p.channels;
  const int64_t rblocks = split_rows(planes, p.in_h);
  const int64_t rows_per = ceil_div(p.in_h, rblocks);
  const int64_t taps = p.kernel_h * p.kernel_w;
  at::parallel_for(0, planes * rblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(rows_per * p.in_w);
    RowSource<scalar_t, acc_t> src;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task / rblocks;
      const int64_t ih0 = (task % rblocks) * rows_per;
      const int64_t ih1 = std::min(p.in_h, ih0 + rows_per);
      if (ih0 >= ih1) continue;
      const int64_t n = plane / p.channels, c = plane % p.channels;
      // Output rows oh reach input rows oh*s - pad + kh*d; those that touch [ih0, ih1) are
      // [oh_lo, oh_hi).
      const int64_t oh_lo =
          ceil_div(std::max<int64_t>(ih0 + p.pad_h - (p.kernel_h - 1) * p.dil_h, 0), p.stride_h);
      const int64_t oh_hi =
          std::min<int64_t>(p.out_h, floor_div(ih1 - 1 + p.pad_h, p.stride_h) + 1);
      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (int64_t j = 0; j < p.mult; ++j) {
        const int64_t co = c * p.mult + j;
        src.load(go + (n * p.out_channels + co) * p.out_h * p.out_w, p.out_w,
                 std::min(oh_lo, oh_hi), oh_hi);
        const acc_t* wc = w.data() + co * taps;
        for (int64_t ih = ih0; ih < ih1; ++ih) {
          acc_t* arow = acc.data() + (ih - ih0) * p.in_w;
          for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
            const int64_t t = ih + p.pad_h - kh * p.dil_h;
            if (t < 0 || t % p.stride_h != 0) continue;
            const int64_t oh = t / p.stride_h;
            if (oh >= p.out_h) continue;
            const acc_t* row = src.row(oh);
            for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
              const int64_t off = kw * p.dil_w - p.pad_w;
              int64_t lo, hi;
              valid_out_range(off, p.stride_w, p.in_w, p.out_w, &lo, &hi);
              axpy_scatter<S>(arow + lo * p.stride_w + off, row + lo, wc[kh * p.kernel_w + kw],
                              hi - lo, p.stride_w);
            }
          }
        }
      }
      store_row(gi + plane * p.in_h * p.in_w + ih0 * p.in_w, acc.data(), (ih1 - ih0) * p.in_w);
    }
  });
}

template <int S, typename scalar_t>
void backward_weight_nchw(const DepthwiseParams& p, const scalar_t* go, const scalar_t* in,
                          scalar_t* gw) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t taps = p.kernel_h * p.kernel_w;
  // Per-tap partial sums over a block of output columns, reduced at the end: elementwise
  // multiply-adds vectorise without reassociating a reduction.
  const int64_t cols = std::clamp<int64_t>(int64_t(65536) / taps, 16, 1024);
  const int64_t cblock = std::min(p.out_w, cols);
  at::parallel_for(0, p.out_channels, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> part(taps * cblock);
    std::vector<acc_t> total(taps);
    RowSource<scalar_t, acc_t> gsrc, xsrc;
    for (int64_t co = begin; co < end; ++co) {
      std::fill(total.begin(), total.end(), acc_t(0));
      for (int64_t ow0 = 0; ow0 < p.out_w; ow0 += cblock) {
        const int64_t ow1 = std::min(p.out_w, ow0 + cblock);
        std::fill(part.begin(), part.end(), acc_t(0));
        for (int64_t n = 0; n < p.batch; ++n) {
          gsrc.load(go + (n * p.out_channels + co) * p.out_h * p.out_w, p.out_w, 0, p.out_h);
          xsrc.load(in + (n * p.channels + co / p.mult) * p.in_h * p.in_w, p.in_w, 0, p.in_h);
          for (int64_t oh = 0; oh < p.out_h; ++oh) {
            const acc_t* grow = gsrc.row(oh);
            for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
              const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
              if (ih < 0 || ih >= p.in_h) continue;
              const acc_t* xrow = xsrc.row(ih);
              for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
                const int64_t off = kw * p.dil_w - p.pad_w;
                int64_t lo, hi;
                valid_out_range(off, p.stride_w, p.in_w, p.out_w, &lo, &hi);
                lo = std::max(lo, ow0);
                hi = std::min(hi, ow1);
                if (lo >= hi) continue;
                mul_acc_gather<S>(part.data() + (kh * p.kernel_w + kw) * cblock + (lo - ow0),
                                  grow + lo, xrow + lo * p.stride_w + off, hi - lo, p.stride_w);
              }
            }
          }
        }
        for (int64_t t = 0; t < taps; ++t) {
          acc_t s = 0;
          const acc_t* pt = part.data() + t * cblock;
          for (int64_t i = 0; i < ow1 - ow0; ++i) s += pt[i];
          total[t] += s;
        }
      }
      store_row(gw + co * taps, total.data(), taps);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// NHWC (channels_last): the inner loops run over channels, contiguous in memory.
// ---------------------------------------------------------------------------------------------

// acc[co] += x[co / m] * w[co] for co in [0, C*m)
template <typename acc_t>
inline void channel_fma(acc_t* __restrict a, const acc_t* __restrict x, const acc_t* __restrict w,
                        int64_t C, int64_t m) {
  if (m == 1) {
    for (int64_t c = 0; c < C; ++c) a[c] += x[c] * w[c];
  } else {
    for (int64_t c = 0; c < C; ++c) {
      const acc_t xv = x[c];
      for (int64_t j = 0; j < m; ++j) a[c * m + j] += xv * w[c * m + j];
    }
  }
}

template <typename scalar_t>
void forward_nhwc(const DepthwiseParams& p, const scalar_t* in, const at::Tensor& weight,
                  const scalar_t* bias, scalar_t* out) {
  using acc_t = acc_type_t<scalar_t>;
  const auto wt = weight_as_acc<scalar_t, acc_t>(weight, p, true);
  const int64_t C = p.channels, Co = p.out_channels;
  std::vector<acc_t> b(Co, acc_t(0));
  if (bias)
    for (int64_t co = 0; co < Co; ++co) b[co] = static_cast<acc_t>(bias[co]);
  at::parallel_for(0, p.batch * p.out_h, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(p.out_w * Co);
    RowSource<scalar_t, acc_t> src;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / p.out_h, oh = task % p.out_h;
      for (int64_t ow = 0; ow < p.out_w; ++ow) std::copy(b.begin(), b.end(), acc.begin() + ow * Co);
      const int64_t ih_lo = std::max<int64_t>(0, oh * p.stride_h - p.pad_h);
      const int64_t ih_hi =
          std::min<int64_t>(p.in_h, oh * p.stride_h - p.pad_h + (p.kernel_h - 1) * p.dil_h + 1);
      src.load(in + n * p.in_h * p.in_w * C, p.in_w * C, ih_lo, std::max(ih_lo, ih_hi));
      for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
        const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
        if (ih < 0 || ih >= p.in_h) continue;
        const acc_t* row = src.row(ih);
        for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
          const int64_t off = kw * p.dil_w - p.pad_w;
          int64_t lo, hi;
          valid_out_range(off, p.stride_w, p.in_w, p.out_w, &lo, &hi);
          const acc_t* wv = wt.data() + (kh * p.kernel_w + kw) * Co;
          for (int64_t ow = lo; ow < hi; ++ow)
            channel_fma(acc.data() + ow * Co, row + (ow * p.stride_w + off) * C, wv, C, p.mult);
        }
      }
      store_row(out + task * p.out_w * Co, acc.data(), p.out_w * Co);
    }
  });
}

template <typename scalar_t>
void backward_input_nhwc(const DepthwiseParams& p, const scalar_t* go, const at::Tensor& weight,
                         scalar_t* gi) {
  using acc_t = acc_type_t<scalar_t>;
  const auto wt = weight_as_acc<scalar_t, acc_t>(weight, p, true);
  const int64_t C = p.channels, Co = p.out_channels, m = p.mult;
  at::parallel_for(0, p.batch * p.in_h, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(p.in_w * C);
    RowSource<scalar_t, acc_t> src;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / p.in_h, ih = task % p.in_h;
      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
        const int64_t t = ih + p.pad_h - kh * p.dil_h;
        if (t < 0 || t % p.stride_h != 0) continue;
        const int64_t oh = t / p.stride_h;
        if (oh >= p.out_h) continue;
        src.load(go + (n * p.out_h + oh) * p.out_w * Co, p.out_w * Co, 0, 1);
        const acc_t* row = src.row(0);
        for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
          const int64_t off = kw * p.dil_w - p.pad_w;
          int64_t lo, hi;
          valid_out_range(off, p.stride_w, p.in_w, p.out_w, &lo, &hi);
          const acc_t* wv = wt.data() + (kh * p.kernel_w + kw) * Co;
          for (int64_t ow = lo; ow < hi; ++ow) {
            acc_t* __restrict a = acc.data() + (ow * p.stride_w + off) * C;
            const acc_t* __restrict g = row + ow * Co;
            if (m == 1) {
              for (int64_t c = 0; c < C; ++c) a[c] += g[c] * wv[c];
            } else {
              for (int64_t c = 0; c < C; ++c) {
                acc_t s = 0;
                for (int64_t j = 0; j < m; ++j) s += g[c * m + j] * wv[c * m + j];
                a[c] += s;
              }
            }
          }
        }
      }
      store_row(gi + task * p.in_w * C, acc.data(), p.in_w * C);
    }
  });
}

template <typename scalar_t>
void backward_weight_nhwc(const DepthwiseParams& p, const scalar_t* go, const scalar_t* in,
                          scalar_t* gw) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t C = p.channels, Co = p.out_channels, m = p.mult;
  const int64_t taps = p.kernel_h * p.kernel_w;
  const int64_t rows = p.batch * p.out_h;
  // A fixed number of row chunks (a function of the shape only, so the summation order never
  // depends on the thread count), each with its own [taps][Co] partial sums, reduced in order.
  const int64_t budget = int64_t(1) << 22;  // partial-sum elements
  const int64_t chunks =
      std::max<int64_t>(1, std::min<int64_t>({rows, 16, budget / std::max<int64_t>(taps * Co, 1)}));
  const int64_t rows_per = ceil_div(rows, chunks);
  std::vector<acc_t> part(chunks * taps * Co, acc_t(0));
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    RowSource<scalar_t, acc_t> gsrc, xsrc;
    for (int64_t ch = begin; ch < end; ++ch) {
      acc_t* pc = part.data() + ch * taps * Co;
      for (int64_t r = ch * rows_per; r < std::min(rows, (ch + 1) * rows_per); ++r) {
        const int64_t n = r / p.out_h, oh = r % p.out_h;
        gsrc.load(go + r * p.out_w * Co, p.out_w * Co, 0, 1);
        const acc_t* grow = gsrc.row(0);
        for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
          const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
          if (ih < 0 || ih >= p.in_h) continue;
          xsrc.load(in + (n * p.in_h + ih) * p.in_w * C, p.in_w * C, 0, 1);
          const acc_t* xrow = xsrc.row(0);
          for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
            const int64_t off = kw * p.dil_w - p.pad_w;
            int64_t lo, hi;
            valid_out_range(off, p.stride_w, p.in_w, p.out_w, &lo, &hi);
            acc_t* __restrict a = pc + (kh * p.kernel_w + kw) * Co;
            for (int64_t ow = lo; ow < hi; ++ow) {
              const acc_t* __restrict g = grow + ow * Co;
              const acc_t* __restrict x = xrow + (ow * p.stride_w + off) * C;
              if (m == 1) {
                for (int64_t c = 0; c < C; ++c) a[c] += g[c] * x[c];
              } else {
                for (int64_t c = 0; c < C; ++c) {
                  const acc_t xv = x[c];
                  for (int64_t j = 0; j < m; ++j) a[c * m + j] += g[c * m + j] * xv;
                }
              }
            }
          }
        }
      }
    }
  });
  for (int64_t co = 0; co < Co; ++co) {
    for (int64_t t = 0; t < taps; ++t) {
      acc_t s = 0;
      for (int64_t ch = 0; ch < chunks; ++ch) s += part[(ch * taps + t) * Co + co];
      gw[co * taps + t] = static_cast<scalar_t>(s);
    }
  }
}

// Runs f.template operator()<S>() with S = the stride when it is 1 or 2, else 0 (run time).
template <typename F>
void with_stride(int64_t s, F&& f) {
  if (s == 1) {
    f(std::integral_constant<int, 1>{});
  } else if (s == 2) {
    f(std::integral_constant<int, 2>{});
  } else {
    f(std::integral_constant<int, 0>{});
  }
}

at::Tensor depthwise_conv2d_cpu(const at::Tensor& input, const at::Tensor& weight,
                                const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation) {
  auto s = setup_depthwise_forward(input, weight, bias, stride, padding, dilation);
  if (s.output.numel() == 0) return s.output;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "atrous_dw_fwd",
                                  [&] {
    const scalar_t* b = s.bias.defined() ? s.bias.data_ptr<scalar_t>() : nullptr;
    if (s.p.layout == Layout::kNHWC) {
      forward_nhwc<scalar_t>(s.p, s.input.data_ptr<scalar_t>(), s.weight, b,
                             s.output.data_ptr<scalar_t>());
    } else {
      with_stride(s.p.stride_w, [&](auto S) {
        forward_nchw<decltype(S)::value, scalar_t>(s.p, s.input.data_ptr<scalar_t>(), s.weight, b,
                                                   s.output.data_ptr<scalar_t>());
      });
    }
  });
  return s.output;
}

at::Tensor depthwise_conv2d_backward_input_cpu(const at::Tensor& grad_output,
                                               const at::Tensor& weight,
                                               at::IntArrayRef input_size, at::IntArrayRef stride,
                                               at::IntArrayRef padding, at::IntArrayRef dilation) {
  auto s = setup_depthwise_backward_input(grad_output, weight, input_size, stride, padding,
                                          dilation);
  if (s.grad_input.numel() == 0) return s.grad_input;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(),
                                  "atrous_dw_bwd_input", [&] {
    if (s.p.layout == Layout::kNHWC) {
      backward_input_nhwc<scalar_t>(s.p, s.grad_output.data_ptr<scalar_t>(), s.weight,
                                    s.grad_input.data_ptr<scalar_t>());
    } else {
      with_stride(s.p.stride_w, [&](auto S) {
        backward_input_nchw<decltype(S)::value, scalar_t>(
            s.p, s.grad_output.data_ptr<scalar_t>(), s.weight, s.grad_input.data_ptr<scalar_t>());
      });
    }
  });
  return s.grad_input;
}

at::Tensor depthwise_conv2d_backward_weight_cpu(const at::Tensor& grad_output,
                                                const at::Tensor& input,
                                                at::IntArrayRef weight_size,
                                                at::IntArrayRef stride, at::IntArrayRef padding,
                                                at::IntArrayRef dilation) {
  auto s = setup_depthwise_backward_weight(grad_output, input, weight_size, stride, padding,
                                           dilation);
  if (s.p.batch == 0) return s.grad_weight.zero_();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                                  "atrous_dw_bwd_weight", [&] {
    if (s.p.layout == Layout::kNHWC) {
      backward_weight_nhwc<scalar_t>(s.p, s.grad_output.data_ptr<scalar_t>(),
                                     s.input.data_ptr<scalar_t>(),
                                     s.grad_weight.data_ptr<scalar_t>());
    } else {
      with_stride(s.p.stride_w, [&](auto S) {
        backward_weight_nchw<decltype(S)::value, scalar_t>(
            s.p, s.grad_output.data_ptr<scalar_t>(), s.input.data_ptr<scalar_t>(),
            s.grad_weight.data_ptr<scalar_t>());
      });
    }
  });
  return s.grad_weight;
}

}  // namespace

TORCH_LIBRARY_IMPL(atrous, CPU, m) {
  m.impl("depthwise_conv2d", &depthwise_conv2d_cpu);
  m.impl("depthwise_conv2d_backward_input", &depthwise_conv2d_backward_input_cpu);
  m.impl("depthwise_conv2d_backward_weight", &depthwise_conv2d_backward_weight_cpu);
}

}  // namespace atrous

// channels_last grad_input, weight and bias gradients, and grad_input with the weight gradient in
// one pass over grad_output.
#include "kernels.h"
#include "nhwc_forward.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

// grad_input with a depth multiplier m > 1 (the plan's kNhwc; m = 1 goes by phases,
// nhwc_phases.cpp, or by the flipped forward): pixel by pixel, each input channel summing its m
// output channels' terms.
template <typename scalar_t>
void backward_input_nhwc(const DepthwiseParams& p, const scalar_t* go, const scalar_t* weight,
                         scalar_t* gi) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t C = p.channels, Co = p.out_channels, m = p.mult, taps = p.kernel_h * p.kernel_w;
  const auto wt = transposed_weight<acc_t>(weight, Co, taps);
  at::parallel_for(0, p.batch * p.in_h, 1, [&](int64_t begin, int64_t end) {
    Buffer<ChannelTerm<acc_t>> terms(taps);
    Buffer<acc_t> gbuf;  // grad_output rows as acc_t, when converting
    Buffer<acc_t> acc(C);
    Buffer<int64_t> khv;
    Buffer<const acc_t*> growv;
    for (int64_t task = begin; task < end; ++task) {
      grad_output_rows(p, go, task / p.in_h, task % p.in_h, khv, growv, gbuf);
      const int64_t nrows = static_cast<int64_t>(growv.size());
      for (int64_t iw = 0; iw < p.in_w; ++iw) {
        scalar_t* o = gi + (task * p.in_w + iw) * C;
        int64_t ne = 0;
        for (int64_t r = 0; r < nrows; ++r) {
          for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
            const int64_t q = iw + p.pad_w - kw * p.dil_w;
            if (q < 0 || q % p.stride_w != 0 || q / p.stride_w >= p.out_w) continue;
            terms[ne++] = {growv[r] + (q / p.stride_w) * Co,
                           wt.data() + (khv[r] * p.kernel_w + kw) * Co};
          }
        }
        std::fill(acc.begin(), acc.end(), acc_t(0));
        for (int64_t e = 0; e < ne; ++e) {
          const acc_t* x = terms[e].x;
          const acc_t* w = terms[e].w;
          for (int64_t c = 0; c < C; ++c) {
            acc_t s = 0;
            for (int64_t j = 0; j < m; ++j) s += x[c * m + j] * w[c * m + j];
            acc[c] += s;
          }
        }
        for (int64_t c = 0; c < C; ++c) o[c] = static_cast<scalar_t>(acc[c]);
      }
    }
  });
}

// dst[i] += sum_{j < n} g[j * gstep + i] * x[j * xstep + i], for K vectors of channels i.
template <int K, typename acc_t>
inline void accumulate_products(acc_t* dst, const acc_t* g, const acc_t* x, int64_t n,
                                int64_t gstep, int64_t xstep) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  V a[K];
  for (int k = 0; k < K; ++k) a[k] = S::broadcast(0);
  for (int64_t j = 0; j < n; ++j)
    for (int k = 0; k < K; ++k)
      a[k] += S::load(g + j * gstep + k * L) * S::load(x + j * xstep + k * L);
  for (int k = 0; k < K; ++k) S::store(dst + k * L, S::load(dst + k * L) + a[k]);
}

// For unit stride and dilation along W, KW taps of one kernel row at once, one channel vector:
// dst[kw * Co] += sum_{i < n} g[i * Co] * x[(i + kw) * Co] for kw < KW. Each input column is loaded
// once and kept in a ring of KW registers (column c in slot c % KW; unrolling KW pixels keeps
// every slot index a constant) for the KW taps that read it: two loads per pixel instead of 2 * KW.
template <int KW, typename acc_t>
inline void accumulate_row_taps(acc_t* dst, int64_t Co, const acc_t* g, const acc_t* x, int64_t n) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  V acc[KW], xs[KW];
  for (int kw = 0; kw < KW; ++kw) acc[kw] = S::broadcast(0);
  for (int c = 0; c + 1 < KW; ++c) xs[c] = S::load(x + c * Co);
  int64_t i = 0;
  for (; i + KW <= n; i += KW) {
#pragma GCC unroll 8
    for (int u = 0; u < KW; ++u) {
      xs[(u + KW - 1) % KW] = S::load(x + (i + u + KW - 1) * Co);
      const V gv = S::load(g + (i + u) * Co);
#pragma GCC unroll 8
      for (int kw = 0; kw < KW; ++kw) acc[kw] += gv * xs[(u + kw) % KW];
    }
  }
  for (; i < n; ++i) {
    const V gv = S::load(g + i * Co);
    for (int kw = 0; kw < KW; ++kw) acc[kw] += gv * S::load(x + (i + kw) * Co);
  }
  for (int kw = 0; kw < KW; ++kw) S::store(dst + kw * Co, S::load(dst + kw * Co) + acc[kw]);
}

// NHWC: the bias sums of all channels, each group's rows fed in order by one task (the weight
// gradient's row chunks are whole groups), with a [L][Co] scratch of lanes per task.
template <typename acc_t>
struct BiasGroups {
  static constexpr int L = Simd<acc_t>::kLanes;
  int64_t group, rows, Co;
  Buffer<acc_t> sums;  // [groups][Co]
  BiasGroups(int64_t rows_, int64_t Co_)
      : group(bias_group_rows(rows_, Co_)), rows(rows_), Co(Co_),
        sums(ceil_div(rows_, group) * Co_, acc_t(0)) {}
  // Row r (g: its n pixels, Co apart) into the lanes; a finished group into its sums.
  void add_row(Buffer<acc_t>& lanes, int64_t r, const acc_t* __restrict g, int64_t n) {
    using S = Simd<acc_t>;
    if (r % group == 0) lanes.assign(L * Co, acc_t(0));
    const int64_t cv = Co / L * L;
    for (int64_t i = 0; i < n; ++i) {
      acc_t* __restrict l = lanes.data() + (i % L) * Co;
      const acc_t* x = g + i * Co;
      for (int64_t c = 0; c < cv; c += L) S::store(l + c, S::load(l + c) + S::load(x + c));
      for (int64_t c = cv; c < Co; ++c) l[c] += x[c];
    }
    if ((r + 1) % group == 0 || r + 1 == rows) {
      acc_t* __restrict dst = sums.data() + r / group * Co;
      for (int64_t c = 0; c < cv; c += L) {
        auto s = S::broadcast(0);
        for (int j = 0; j < L; ++j) s += S::load(lanes.data() + j * Co + c);
        S::store(dst + c, s);
      }
      for (int64_t c = cv; c < Co; ++c) {
        acc_t s = 0;
        for (int j = 0; j < L; ++j) s += lanes[j * Co + c];
        dst[c] = s;
      }
    }
  }
  template <typename scalar_t>
  void finish(scalar_t* gb) const {
    const int64_t groups = ceil_div(rows, group);
    for (int64_t co = 0; co < Co; ++co) {
      acc_t s = 0;
      for (int64_t g = 0; g < groups; ++g) s += sums[g * Co + co];
      gb[co] = static_cast<scalar_t>(s);
    }
  }
};

// Per-task buffers of the channels_last weight gradient: kept across the calls that add one
// chunk's rows (a bias group's lanes carry over from row to row).
template <typename scalar_t>
struct WeightRowsScratch {
  using acc_t = acc_type_t<scalar_t>;
  PixelRows<scalar_t, acc_t> xrows;
  Buffer<acc_t> gbuf, bias_lanes;
  explicit WeightRowsScratch(const DepthwiseParams& p)
      : xrows(p), gbuf(std::is_same_v<scalar_t, acc_t> ? 0 : p.out_w * p.out_channels) {}
};

// The channels_last weight gradient, and with gb the bias gradient (each grad_output row summed
// while it is in cache for the weight gradient; see BiasGroups): the set-up, then
// drive(chunks, rows_per, add_rows), where add_rows(ch, r0, r1, scratch) adds grad_output rows
// [r0, r1) (of the rows n * out_h + oh) of chunk ch, [ch * rows_per, (ch + 1) * rows_per); each
// chunk's rows must be added in order, by one task; then the chunks' partial sums are reduced.
template <typename scalar_t, typename Drive>
void backward_weight_nhwc_with(const DepthwiseParams& p, const scalar_t* go, const scalar_t* in,
                               scalar_t* gw, scalar_t* gb, Drive&& drive) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t Co = p.out_channels;
  const int64_t taps = p.kernel_h * p.kernel_w;
  const int64_t rows = p.batch * p.out_h;
  // A fixed number of row chunks (a function of the shape only, so the summation order never
  // depends on the thread count), each with its own [taps][Co] partial sums, reduced in order.
  const int64_t budget = int64_t(1) << 22;  // partial-sum elements
  const int64_t chunks_wanted = std::max<int64_t>(
      1, std::min<int64_t>({rows, 16, budget / std::max<int64_t>(taps * Co, 1)}));
  // Chunks of whole bias groups (whether or not gb is asked for, so that the weight gradient's
  // summation order is the same either way).
  const int64_t group = bias_group_rows(rows, Co);
  const int64_t rows_per = ceil_div(ceil_div(rows, chunks_wanted), group) * group;
  const int64_t chunks = ceil_div(rows, rows_per);
  Buffer<acc_t> part(chunks * taps * Co, acc_t(0));
  std::optional<BiasGroups<acc_t>> bias;
  if (gb) bias.emplace(rows, Co);
  constexpr bool kConvert = !std::is_same_v<scalar_t, acc_t>;
  const bool row_taps = p.stride_w == 1 && p.dil_w == 1 &&
                        (p.kernel_w == 3 || p.kernel_w == 5 || p.kernel_w == 7);
  const int64_t n_vec = Co / Simd<acc_t>::kLanes * Simd<acc_t>::kLanes;
  auto add_rows = [&](int64_t ch, int64_t r0, int64_t r1, WeightRowsScratch<scalar_t>& scratch) {
    PixelRows<scalar_t, acc_t>& xrows = scratch.xrows;
    Buffer<acc_t>& gbuf = scratch.gbuf;
    Buffer<acc_t>& bias_lanes = scratch.bias_lanes;
    acc_t* pc = part.data() + ch * taps * Co;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / p.out_h, oh = r % p.out_h;
      const acc_t* grow;
      if constexpr (kConvert) {
        const scalar_t* src = go + r * p.out_w * Co;
        for (int64_t i = 0; i < p.out_w * Co; ++i) gbuf[i] = static_cast<acc_t>(src[i]);
        grow = gbuf.data();
      } else {
        grow = go + r * p.out_w * Co;
      }
      if (bias) bias->add_row(bias_lanes, r, grow, p.out_w);
      int64_t kh_lo, kh_hi;
      valid_taps(oh, p.stride_h, p.pad_h, p.dil_h, p.kernel_h, p.in_h, &kh_lo, &kh_hi);
      for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {
        const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
        xrows.load(in + n * p.in_h * p.in_w * p.channels, ih, ih + 1);
        // Output pixels [mid_lo, mid_hi) have all kW taps inside the row: with unit stride and
        // dilation and kW of 3, 5 or 7, their vector channels go through accumulate_row_taps.
        int64_t mid_lo = 0, mid_hi = 0, unused;
        const bool rowwise = row_taps && n_vec > 0;
        if (rowwise) {
          valid_out_range(-p.pad_w, 1, p.in_w, p.out_w, &mid_lo, &unused);
          valid_out_range(p.kernel_w - 1 - p.pad_w, 1, p.in_w, p.out_w, &unused, &mid_hi);
          if (mid_hi < mid_lo) mid_hi = mid_lo;
          acc_t* dst = pc + kh * p.kernel_w * Co;
          const acc_t* g0 = grow + mid_lo * Co;
          const acc_t* x0 = xrows.pixel(ih, mid_lo - p.pad_w);
          for (int64_t cb = 0; cb < n_vec; cb += Simd<acc_t>::kLanes) {
            if (p.kernel_w == 3) {
              accumulate_row_taps<3>(dst + cb, Co, g0 + cb, x0 + cb, mid_hi - mid_lo);
            } else if (p.kernel_w == 5) {
              accumulate_row_taps<5>(dst + cb, Co, g0 + cb, x0 + cb, mid_hi - mid_lo);
            } else {
              accumulate_row_taps<7>(dst + cb, Co, g0 + cb, x0 + cb, mid_hi - mid_lo);
            }
          }
        }
        for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
          const int64_t off = kw * p.dil_w - p.pad_w;
          int64_t lo, hi;
          valid_out_range(off, p.stride_w, p.in_w, p.out_w, &lo, &hi);
          acc_t* dst = pc + (kh * p.kernel_w + kw) * Co;
          // Pixels [a, b) of channels [c0, c1): pixel j reads g at j * Co and x at xrow(j).
          auto per_tap = [&](int64_t a, int64_t b, int64_t c0, int64_t c1) {
            if (a >= b) return;
            constexpr int L = Simd<acc_t>::kLanes;
            constexpr int64_t B = kCB<acc_t>;
            const acc_t* g0 = grow + a * Co;
            const acc_t* x0 = xrows.pixel(ih, a * p.stride_w + off);
            const int64_t xstep = p.stride_w * Co, count = b - a;
            int64_t cb = c0;
            for (; cb + B <= c1; cb += B)
              accumulate_products<B / L>(dst + cb, g0 + cb, x0 + cb, count, Co, xstep);
            for (; cb + L <= c1; cb += L)
              accumulate_products<1>(dst + cb, g0 + cb, x0 + cb, count, Co, xstep);
            for (; cb < c1; ++cb)
              for (int64_t i = 0; i < count; ++i) dst[cb] += g0[i * Co + cb] * x0[i * xstep + cb];
          };
          if (rowwise) {  // the vector channels of the border pixels, then the last channels
            per_tap(lo, std::min(hi, mid_lo), 0, n_vec);
            per_tap(std::max(lo, mid_hi), hi, 0, n_vec);
            per_tap(lo, hi, n_vec, Co);
          } else {
            per_tap(lo, hi, 0, Co);
          }
        }
      }
    }
  };
  drive(chunks, rows_per, add_rows);
  for (int64_t co = 0; co < Co; ++co) {
    for (int64_t t = 0; t < taps; ++t) {
      acc_t s = 0;
      for (int64_t ch = 0; ch < chunks; ++ch) s += part[(ch * taps + t) * Co + co];
      gw[co * taps + t] = static_cast<scalar_t>(s);
    }
  }
  if (bias) bias->finish(gb);
}

template <typename scalar_t>
void backward_weight_nhwc(const DepthwiseParams& p, const scalar_t* go, const scalar_t* in,
                          scalar_t* gw, scalar_t* gb) {
  const int64_t rows = p.batch * p.out_h;
  backward_weight_nhwc_with(p, go, in, gw, gb, [&](int64_t chunks, int64_t rows_per, auto& add_rows) {
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      WeightRowsScratch<scalar_t> scratch(p);
      for (int64_t ch = begin; ch < end; ++ch)
        add_rows(ch, ch * rows_per, std::min(rows, (ch + 1) * rows_per), scratch);
    });
  });
}

// grad_input and the weight (and bias) gradients of channels_last tensors in one pass over
// grad_output, for the strides where grad_input is the forward with the flipped kernel (q: the
// op's geometry, t: the flipped forward's, from flipped_forward_params): each task takes the weight
// gradient's chunks, 8 grad_output rows at a time, and after each group of rows the grad_input
// rows that correspond (their share of the image rows), while those grad_output rows are still in
// cache. Results are bit for bit those of the separate kernels.
template <typename scalar_t>
void backward_input_weight_nhwc(const DepthwiseParams& q, const DepthwiseParams& t,
                                const scalar_t* go, const scalar_t* in,
                                const scalar_t* flipped_weight, scalar_t* gi, scalar_t* gw,
                                scalar_t* gb) {
  const int64_t rows = q.batch * q.out_h;      // grad_output rows
  const int64_t gi_rows = t.batch * t.out_h;   // grad_input rows
  constexpr int64_t kStep = 8;
  backward_weight_nhwc_with(q, go, in, gw, gb, [&](int64_t chunks, int64_t rows_per, auto& add_rows) {
    forward_nhwc_with(t, go, flipped_weight, static_cast<const scalar_t*>(nullptr), gi,
                      [&](auto& compute_rows) {
      // grad_input rows [g0, g1) of the rows n * in_h + ih, image by image.
      auto gi_span = [&](int64_t g0, int64_t g1) {
        while (g0 < g1) {
          const int64_t n = g0 / t.out_h, ih0 = g0 % t.out_h;
          const int64_t ih1 = std::min(t.out_h, ih0 + (g1 - g0));
          compute_rows(n, ih0, ih1);
          g0 += ih1 - ih0;
        }
      };
      at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
        WeightRowsScratch<scalar_t> scratch(q);
        for (int64_t ch = begin; ch < end; ++ch) {
          const int64_t r1 = std::min(rows, (ch + 1) * rows_per);
          for (int64_t r = ch * rows_per; r < r1; r += kStep) {
            const int64_t re = std::min(r1, r + kStep);
            add_rows(ch, r, re, scratch);
            gi_span(r * gi_rows / rows, re * gi_rows / rows);
          }
        }
      });
    });
  });
}

// grad_bias of channels_last grad_output (see bias_group_rows).
template <typename scalar_t>
void backward_bias_nhwc(const DepthwiseParams& p, const scalar_t* go, scalar_t* gb) {
  using acc_t = acc_type_t<scalar_t>;
  constexpr bool kConvert = !std::is_same_v<scalar_t, acc_t>;
  const int64_t Co = p.out_channels, rows = p.batch * p.out_h, row_len = p.out_w * Co;
  BiasGroups<acc_t> bias(rows, Co);
  at::parallel_for(0, ceil_div(rows, bias.group), 1, [&](int64_t begin, int64_t end) {
    Buffer<acc_t> gbuf(kConvert ? row_len : 0), lanes;
    for (int64_t r = begin * bias.group; r < std::min(rows, end * bias.group); ++r) {
      const scalar_t* src = go + r * row_len;
      if constexpr (kConvert) {
        for (int64_t i = 0; i < row_len; ++i) gbuf[i] = static_cast<acc_t>(src[i]);
        bias.add_row(lanes, r, gbuf.data(), p.out_w);
      } else {
        bias.add_row(lanes, r, src, p.out_w);
      }
    }
  });
  bias.finish(gb);
}

// grad_bias of NCHW grad_output, per channel (see bias_group_rows).
template void backward_input_nhwc<float>(const DepthwiseParams&, const float*, const float*, float*);
template void backward_input_nhwc<double>(const DepthwiseParams&, const double*, const double*, double*);
template void backward_input_nhwc<c10::Half>(const DepthwiseParams&, const c10::Half*, const c10::Half*, c10::Half*);
template void backward_input_nhwc<c10::BFloat16>(const DepthwiseParams&, const c10::BFloat16*, const c10::BFloat16*, c10::BFloat16*);
template void backward_weight_nhwc<float>(const DepthwiseParams&, const float*, const float*, float*, float*);
template void backward_weight_nhwc<double>(const DepthwiseParams&, const double*, const double*, double*, double*);
template void backward_weight_nhwc<c10::Half>(const DepthwiseParams&, const c10::Half*, const c10::Half*, c10::Half*, c10::Half*);
template void backward_weight_nhwc<c10::BFloat16>(const DepthwiseParams&, const c10::BFloat16*, const c10::BFloat16*, c10::BFloat16*, c10::BFloat16*);
template void backward_input_weight_nhwc<float>(const DepthwiseParams&, const DepthwiseParams&, const float*, const float*, const float*, float*, float*, float*);
template void backward_input_weight_nhwc<double>(const DepthwiseParams&, const DepthwiseParams&, const double*, const double*, const double*, double*, double*, double*);
template void backward_input_weight_nhwc<c10::Half>(const DepthwiseParams&, const DepthwiseParams&, const c10::Half*, const c10::Half*, const c10::Half*, c10::Half*, c10::Half*, c10::Half*);
template void backward_input_weight_nhwc<c10::BFloat16>(const DepthwiseParams&, const DepthwiseParams&, const c10::BFloat16*, const c10::BFloat16*, const c10::BFloat16*, c10::BFloat16*, c10::BFloat16*, c10::BFloat16*);
template void backward_bias_nhwc<float>(const DepthwiseParams&, const float*, float*);
template void backward_bias_nhwc<double>(const DepthwiseParams&, const double*, double*);
template void backward_bias_nhwc<c10::Half>(const DepthwiseParams&, const c10::Half*, c10::Half*);
template void backward_bias_nhwc<c10::BFloat16>(const DepthwiseParams&, const c10::BFloat16*, c10::BFloat16*);
}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

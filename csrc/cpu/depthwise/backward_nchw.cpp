// NCHW grad_input (prepared grad_output rows), weight and bias gradients.
#include "kernels.h"
#include "nchw_rows.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

template <int K, typename acc_t>
inline void dot_lanes(acc_t* __restrict lanes, const acc_t* __restrict g, const acc_t* __restrict v,
                      int64_t n_round) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  V a[K];
  for (int k = 0; k < K; ++k) a[k] = S::broadcast(0);
  for (int64_t o0 = 0; o0 < n_round; o0 += K * L)
    for (int k = 0; k < K; ++k) a[k] += S::load(g + o0 + k * L) * S::load(v + o0 + k * L);
  for (int k = 0; k < K; ++k) S::store(lanes + k * L, S::load(lanes + k * L) + a[k]);
}

// lanes[kw * L + i] += sum over rows and vectors of g[o + i] * x[offset[kw] + o + i] for the KW
// taps of one kernel row: each grad_output vector is loaded once for the KW taps, and the sums stay
// in registers over all the rows given (xrows[r]: the prepared input row that grad row grows[r]
// meets at this kernel row).
template <int KW, typename acc_t>
inline void row_taps_nchw(acc_t* __restrict lanes, const acc_t* const* xrows,
                          const acc_t* const* grows, int64_t n_rows, const int64_t* offset,
                          int64_t n_round) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  V a[KW];
  for (int kw = 0; kw < KW; ++kw) a[kw] = S::broadcast(0);
  for (int64_t r = 0; r < n_rows; ++r) {
    const acc_t* g = grows[r];
    const acc_t* x = xrows[r];
    for (int64_t o0 = 0; o0 < n_round; o0 += L) {
      const V gv = S::load(g + o0);
      for (int kw = 0; kw < KW; ++kw) a[kw] += gv * S::load(x + offset[kw] + o0);
    }
  }
  for (int kw = 0; kw < KW; ++kw) S::store(lanes + kw * L, S::load(lanes + kw * L) + a[kw]);
}

// lanes[(kh * K + kw) * L ...] += the K x K taps' sums over one plane: for each grad_output row
// and vector, the vector is loaded once for all K * K taps, whose sums stay in K * K registers
// over the whole plane (row_taps_nchw keeps K, per kernel row, and pays its loop per row and
// kernel row: at 28 values a row that overhead was most of the time). g: the grad_output plane,
// read in place (its last vector of a row masked). xrow(oh, kh): the prepared input row that
// grad_output row oh meets at kernel row kh, or a zero row.
template <int K, typename scalar_t, typename acc_t, typename XRow>
inline void plane_taps_nchw(acc_t* __restrict lanes, const scalar_t* __restrict g, int64_t out_h, int64_t out_w,
                            const int64_t* offset, XRow xrow) {
  using S = Simd<acc_t>;
  using C = Cast<scalar_t, acc_t>;
  using V = typename S::vec;
  constexpr int L = S::kLanes;
  int64_t off[K];
  for (int kw = 0; kw < K; ++kw) off[kw] = offset[kw];
  V a[K * K];
  for (int i = 0; i < K * K; ++i) a[i] = S::broadcast(0);
  for (int64_t oh = 0; oh < out_h; ++oh) {
    const acc_t* x[K];
    for (int kh = 0; kh < K; ++kh) x[kh] = xrow(oh, kh);
    const scalar_t* grow = g + oh * out_w;
    for (int64_t o0 = 0; o0 < out_w; o0 += L) {
      const V gv = o0 + L <= out_w ? C::load(grow + o0) : C::load_first(grow + o0, out_w - o0);
      for (int kh = 0; kh < K; ++kh)
        for (int kw = 0; kw < K; ++kw) a[kh * K + kw] += gv * S::load(x[kh] + off[kw] + o0);
    }
  }
  for (int i = 0; i < K * K; ++i) S::store(lanes + i * L, S::load(lanes + i * L) + a[i]);
}

}  // namespace

template <typename scalar_t>
void backward_input_nchw(const DepthwiseParams& p, const scalar_t* go, const scalar_t* weight,
                         scalar_t* gi) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t taps = p.kernel_h * p.kernel_w;
  const auto w = to_acc<scalar_t, acc_t>(weight, p.out_channels * taps);
  const int64_t planes = p.batch * p.channels;
  const int64_t rblocks = split_rows(planes, p.in_h);
  const int64_t rows_per = ceil_div(p.in_h, rblocks);
  const int64_t n_round = ceil_div(p.in_w, block_for<acc_t>(p.in_w)) * block_for<acc_t>(p.in_w);
  const TapRows t = backward_taps(n_round, p.kernel_w, p.dil_w);
  // Pairs of input rows share all but one grad_output row when stride and dilation along H are 1.
  const bool pairs = p.stride_h == 1 && p.dil_h == 1 && p.kernel_h > 1;
  at::parallel_for(0, planes * rblocks, 1, [&](int64_t begin, int64_t end) {
    Buffer<acc_t> buf;
    Buffer<Entry<acc_t>> entries(p.kernel_h * p.mult);
    Buffer<Entry2<acc_t>> entries2((p.kernel_h + 1) * p.mult);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task / rblocks;
      const int64_t ih0 = (task % rblocks) * rows_per;
      const int64_t ih1 = std::min(p.in_h, ih0 + rows_per);
      if (ih0 >= ih1) continue;
      const int64_t n = plane / p.channels, c = plane % p.channels;
      // Output rows oh reach input rows oh * s - pad + kh * d; those reaching [ih0, ih1):
      const int64_t oh_lo =
          ceil_div(std::max<int64_t>(ih0 + p.pad_h - (p.kernel_h - 1) * p.dil_h, 0), p.stride_h);
      const int64_t oh_hi =
          std::min<int64_t>(p.out_h, floor_div(ih1 - 1 + p.pad_h, p.stride_h) + 1);
      const int64_t rows = std::max<int64_t>(oh_hi - oh_lo, 0);
      buf.resize(p.mult * rows * t.len);
      for (int64_t j = 0; j < p.mult; ++j) {
        const scalar_t* g = go + (n * p.out_channels + c * p.mult + j) * p.out_h * p.out_w;
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh)
          prepare_backward_row(t, buf.data() + (j * rows + oh - oh_lo) * t.len, g + oh * p.out_w,
                               p.out_w, n_round, p.kernel_w, p.stride_w, p.dil_w, p.pad_w);
      }
      int64_t ih = ih0;
      for (; pairs && ih + 1 < ih1; ih += 2) {
        // grad_output rows oh = ih + pad - kh feed input row ih (tap ih + pad - oh) and ih + 1
        // (tap ih + 1 + pad - oh).
        int64_t ne = 0;
        for (int64_t oh = ih + p.pad_h - (p.kernel_h - 1); oh <= ih + 1 + p.pad_h; ++oh) {
          if (oh < 0 || oh >= p.out_h) continue;
          const int64_t k0 = ih + p.pad_h - oh, k1 = k0 + 1;
          for (int64_t j = 0; j < p.mult; ++j) {
            const acc_t* wj = w.data() + (c * p.mult + j) * taps;
            entries2[ne++] = {buf.data() + (j * rows + oh - oh_lo) * t.len,
                              k0 >= 0 && k0 < p.kernel_h ? wj + k0 * p.kernel_w : nullptr,
                              k1 < p.kernel_h ? wj + k1 * p.kernel_w : nullptr};
          }
        }
        scalar_t* o = gi + (plane * p.in_h + ih) * p.in_w;
        with_block_kw<acc_t>(p.in_w, p.kernel_w, [&](auto B, auto KC) {
          correlate_row2<decltype(B)::value, decltype(KC)::value>(o, o + p.in_w, p.in_w, acc_t(0),
                                                                  entries2.data(), ne,
                                             t.offset.data(), p.kernel_w);
        });
      }
      for (; ih < ih1; ++ih) {
        // grad_output rows oh with ih + pad - oh * s = kh * d for a kernel row kh, in order of kh
        // (two divisions a row rather than two a kernel row).
        int64_t ne = 0;
        const int64_t top = ih + p.pad_h;
        const int64_t oh_first = std::max<int64_t>(0, ceil_div(top - (p.kernel_h - 1) * p.dil_h,
                                                               p.stride_h));
        const int64_t oh_last = std::min<int64_t>(p.out_h - 1, floor_div(top, p.stride_h));
        for (int64_t oh = oh_last; oh >= oh_first; --oh) {
          const int64_t r = top - oh * p.stride_h;  // kh * d
          if (p.dil_h != 1 && r % p.dil_h != 0) continue;
          const int64_t kh = p.dil_h == 1 ? r : r / p.dil_h;
          for (int64_t j = 0; j < p.mult; ++j)
            entries[ne++] = {buf.data() + (j * rows + oh - oh_lo) * t.len,
                             w.data() + (c * p.mult + j) * taps + kh * p.kernel_w};
        }
        with_block_kw<acc_t>(p.in_w, p.kernel_w, [&](auto B, auto KC) {
          correlate_row<decltype(B)::value, decltype(KC)::value>(
              gi + (plane * p.in_h + ih) * p.in_w, p.in_w, acc_t(0),
                                            entries.data(), ne, t.offset.data(), p.kernel_w);
        });
      }
    }
  });
}

// lanes[i] += sum over blocks of g[b + i] * v[b + i], for rows of n_round values, K vectors at a
// time (g is zero past the row's end).
// With gb, also the bias gradient (each channel's sum of grad_output), from the grad_output plane
// already copied for the weight gradient: one read of grad_output for both.
template <typename scalar_t>
void backward_weight_nchw(const DepthwiseParams& p, const scalar_t* go, const scalar_t* in,
                          scalar_t* gw, scalar_t* gb) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t taps = p.kernel_h * p.kernel_w;
  const int64_t Bn = block_for<acc_t>(p.out_w);  // values per lane block
  const int64_t n_round = ceil_div(p.out_w, Bn) * Bn;
  const TapRows t = forward_taps(n_round, p.kernel_w, p.stride_w, p.dil_w);
  // Kernel widths 3, 5 and 7 take a kernel row's taps at once (row_taps_nchw); the sums of tap t
  // then sit in lanes[t * L ...] (one vector) rather than lanes[t * Bn ...].
  // 3x3 kernels take all nine taps at once (plane_taps_nchw), with the same lanes layout.
  const bool row_taps = p.kernel_w == 3 || p.kernel_w == 5 || p.kernel_w == 7;
  const bool plane_taps = p.kernel_w == 3 && p.kernel_h == 3;
  // At unit stride a prepared row is the input row between zeros that are the same for every
  // row: the buffer is zeroed once and only [lo, hi) is copied per row.
  const bool fixed_padding = t.phases && p.stride_w == 1;
  const int64_t lo = std::clamp<int64_t>(p.pad_w, 0, t.len), hi = std::clamp<int64_t>(p.in_w + p.pad_w, lo, t.len);
  constexpr int L = Simd<acc_t>::kLanes;
  at::parallel_for(0, p.out_channels, 1, [&](int64_t begin, int64_t end) {
    Buffer<acc_t> xbuf(p.in_h * t.len, acc_t(0)), gbuf(p.out_h * n_round, acc_t(0));
    Buffer<acc_t> zero_row(plane_taps ? t.len : 0, acc_t(0));  // where a kernel row meets padding
    Buffer<acc_t> lanes(taps * Bn);
    Buffer<const acc_t*> xr(p.out_h), gr(p.out_h);
    for (int64_t co = begin; co < end; ++co) {
      std::fill(lanes.begin(), lanes.end(), acc_t(0));
      ChannelBiasSum<acc_t> bias_sum(p.batch * p.out_h, p.out_channels);
      for (int64_t n = 0; n < p.batch; ++n) {
        const scalar_t* x = in + (n * p.channels + co / p.mult) * p.in_h * p.in_w;
        const scalar_t* g = go + (n * p.out_channels + co) * p.out_h * p.out_w;
        for (int64_t ih = 0; ih < p.in_h; ++ih) {
          if (fixed_padding) {
            copy_values(xbuf.data() + ih * t.len + lo, x + ih * p.in_w + lo - p.pad_w, hi - lo);
          } else {
            prepare_forward_row(t, xbuf.data() + ih * t.len, x + ih * p.in_w, p.in_w, n_round, p.kernel_w,
                                p.stride_w, p.dil_w, p.pad_w);
          }
        }
        if (plane_taps) {  // grad_output in place
          if (gb) {
            for (int64_t oh = 0; oh < p.out_h; ++oh) bias_sum.add_row(n * p.out_h + oh, g + oh * p.out_w, p.out_w);
          }
          plane_taps_nchw<3>(lanes.data(), g, p.out_h, p.out_w, t.offset.data(), [&](int64_t oh, int kh) {
            const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
            return ih >= 0 && ih < p.in_h ? xbuf.data() + ih * t.len : zero_row.data();
          });
          continue;
        }
        for (int64_t oh = 0; oh < p.out_h; ++oh) copy_values(gbuf.data() + oh * n_round, g + oh * p.out_w, p.out_w);
        if (gb) {  // from the rows already converted
          for (int64_t oh = 0; oh < p.out_h; ++oh)
            bias_sum.add_row(n * p.out_h + oh, gbuf.data() + oh * n_round, p.out_w);
        }
        if (row_taps) {
          // A kernel row's taps at once, over all the output rows that reach it.
          for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
            int64_t nr = 0;
            for (int64_t oh = 0; oh < p.out_h; ++oh) {
              const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
              if (ih < 0 || ih >= p.in_h) continue;
              xr[nr] = xbuf.data() + ih * t.len;
              gr[nr++] = gbuf.data() + oh * n_round;
            }
            acc_t* l = lanes.data() + kh * p.kernel_w * L;
            if (p.kernel_w == 3) {
              row_taps_nchw<3>(l, xr.data(), gr.data(), nr, t.offset.data(), n_round);
            } else if (p.kernel_w == 5) {
              row_taps_nchw<5>(l, xr.data(), gr.data(), nr, t.offset.data(), n_round);
            } else {
              row_taps_nchw<7>(l, xr.data(), gr.data(), nr, t.offset.data(), n_round);
            }
          }
          continue;
        }
        for (int64_t oh = 0; oh < p.out_h; ++oh) {
          const acc_t* grow = gbuf.data() + oh * n_round;
          for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
            const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
            if (ih < 0 || ih >= p.in_h) continue;
            const acc_t* xrow = xbuf.data() + ih * t.len;
            for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
              acc_t* l = lanes.data() + (kh * p.kernel_w + kw) * Bn;
              with_block<acc_t>(p.out_w, [&](auto B) {
                dot_lanes<decltype(B)::value>(l, grow, xrow + t.offset[kw], n_round);
              });
            }
          }
        }
      }
      for (int64_t tap = 0; tap < taps; ++tap) {
        acc_t s = 0;
        if (row_taps) {
          for (int64_t i = 0; i < L; ++i) s += lanes[tap * L + i];
        } else {
          for (int64_t i = 0; i < Bn; ++i) s += lanes[tap * Bn + i];
        }
        gw[co * taps + tap] = static_cast<scalar_t>(s);
      }
      if (gb) gb[co] = static_cast<scalar_t>(bias_sum.total);
    }
  });
}

template <typename scalar_t>
void backward_bias_nchw(const DepthwiseParams& p, const scalar_t* go, scalar_t* gb) {
  using acc_t = acc_type_t<scalar_t>;
  at::parallel_for(0, p.out_channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t co = begin; co < end; ++co) {
      ChannelBiasSum<acc_t> sum(p.batch * p.out_h, p.out_channels);
      for (int64_t n = 0; n < p.batch; ++n) {
        const scalar_t* g = go + (n * p.out_channels + co) * p.out_h * p.out_w;
        for (int64_t oh = 0; oh < p.out_h; ++oh) sum.add_row(n * p.out_h + oh, g + oh * p.out_w, p.out_w);
      }
      gb[co] = static_cast<scalar_t>(sum.total);
    }
  });
}

template void backward_input_nchw<float>(const DepthwiseParams&, const float*, const float*, float*);
template void backward_input_nchw<double>(const DepthwiseParams&, const double*, const double*, double*);
template void backward_input_nchw<c10::Half>(const DepthwiseParams&, const c10::Half*, const c10::Half*, c10::Half*);
template void backward_input_nchw<c10::BFloat16>(const DepthwiseParams&, const c10::BFloat16*, const c10::BFloat16*, c10::BFloat16*);
template void backward_weight_nchw<float>(const DepthwiseParams&, const float*, const float*, float*, float*);
template void backward_weight_nchw<double>(const DepthwiseParams&, const double*, const double*, double*, double*);
template void backward_weight_nchw<c10::Half>(const DepthwiseParams&, const c10::Half*, const c10::Half*, c10::Half*, c10::Half*);
template void backward_weight_nchw<c10::BFloat16>(const DepthwiseParams&, const c10::BFloat16*, const c10::BFloat16*, c10::BFloat16*, c10::BFloat16*);
template void backward_bias_nchw<float>(const DepthwiseParams&, const float*, float*);
template void backward_bias_nchw<double>(const DepthwiseParams&, const double*, double*);
template void backward_bias_nchw<c10::Half>(const DepthwiseParams&, const c10::Half*, c10::Half*);
template void backward_bias_nchw<c10::BFloat16>(const DepthwiseParams&, const c10::BFloat16*, c10::BFloat16*);
}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

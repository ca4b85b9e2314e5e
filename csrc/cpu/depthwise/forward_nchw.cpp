// NCHW forward kernels of prepared rows (nchw_rows.h): the flat plane, the column sweep and rows,
// as plan_forward chooses.
#include "kernels.h"
#include "nchw_rows.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

// NCHW forward of whole planes with unit stride: the plane, zero-padded to a pitch of
// Wp = out_w + (kW - 1) * dW columns and Hp = out_h + (kH - 1) * dH rows, is one long row, and
// result oh * Wp + ow reads buf[(oh + kh * dH) * Wp + ow + kw * dW]. One correlate_row over
// out_h * Wp results (the kernel rows as entries, the columns as offsets) replaces a call per
// output row, whose fixed costs dominate narrow rows; the Wp - out_w extra results of each row
// are computed and dropped.
template <typename scalar_t, typename acc_t>
void forward_nchw_flat(const DepthwiseParams& p, const scalar_t* in, const acc_t* w,
                       const scalar_t* bias, scalar_t* out) {
  constexpr int L = Simd<acc_t>::kLanes;
  constexpr int K = 4;
  const int64_t kH = p.kernel_h, kW = p.kernel_w, taps = kH * kW;
  const int64_t Wp = p.out_w + (kW - 1) * p.dil_w;
  const int64_t Hp = p.out_h + (kH - 1) * p.dil_h;
  const int64_t n = p.out_h * Wp;
  const int64_t n_round = ceil_div(n, K * L) * K * L;
  // correlate_row reads entry kh from kh * dH * Wp to n_round + (kW - 1) * dW past it.
  const int64_t buf_len = std::max(Hp * Wp, (kH - 1) * p.dil_h * Wp + n_round + (kW - 1) * p.dil_w);
  Buffer<int64_t> offset(kW);
  for (int64_t kw = 0; kw < kW; ++kw) offset[kw] = kw * p.dil_w;
  at::parallel_for(0, p.batch * p.out_channels, 1, [&](int64_t begin, int64_t end) {
    Buffer<acc_t> buf(buf_len, acc_t(0)), res(n_round);  // past Hp * Wp: zeros, never written
    Buffer<Entry<acc_t>> entries(kH);
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t nb = plane / p.out_channels, co = plane % p.out_channels;
      const scalar_t* x = in + (nb * p.channels + co / p.mult) * p.in_h * p.in_w;
      for (int64_t r = 0; r < Hp; ++r) {
        const int64_t ih = r - p.pad_h;
        acc_t* dst = buf.data() + r * Wp;
        if (ih < 0 || ih >= p.in_h) {
          std::fill(dst, dst + Wp, acc_t(0));
        } else {
          shifted_copy(dst, Wp, x + ih * p.in_w, p.in_w, p.pad_w);
        }
      }
      const acc_t* wc = w + co * taps;
      for (int64_t kh = 0; kh < kH; ++kh) entries[kh] = {buf.data() + kh * p.dil_h * Wp, wc + kh * kW};
      with_kernel_width(kW, [&](auto KC) {
        correlate_row<K, decltype(KC)::value>(res.data(), n,
                                              bias ? static_cast<acc_t>(bias[co]) : acc_t(0),
                                              entries.data(), kH, offset.data(), kW);
      });
      scalar_t* o = out + plane * p.out_h * p.out_w;
      for (int64_t oh = 0; oh < p.out_h; ++oh)
        for (int64_t ow = 0; ow < p.out_w; ++ow)
          o[oh * p.out_w + ow] = static_cast<scalar_t>(res[oh * Wp + ow]);
    }
  });
}

// One column vector (L output columns) of R output rows, for a KH x KW kernel: x points at the
// sweep's first input row as prepared (see forward_nchw_sweep), input row j of the sweep x_step
// further on, tap column kw at tap_off[kw] (kw * dW for unit stride, SH = 1: the sweeps pair unit
// strides and strides of 2); output q reads rows q * SH + kh. Each input vector,
// loaded once per row j and tap column kw, feeds every output it meets (through kernel row
// j - q * SH), so a load serves up to KH / SH products. The first `rows` outputs and `lanes` lanes
// are stored, out_step apart.
template <int R, int KH, int KW, int SH, typename scalar_t, typename acc_t>
inline void sweep_column(scalar_t* __restrict out, int64_t out_step, int64_t rows, int64_t lanes,
                         const acc_t* __restrict x, int64_t x_step, const int64_t* tap_off,
                         int64_t dW, const acc_t* __restrict w, acc_t bias) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  auto input = [&](int j, int kw) {
    return S::in_register(S::load(x + j * x_step + (SH == 1 ? kw * dW : tap_off[kw])));
  };
  V acc[R];
  for (int q = 0; q < R; ++q) acc[q] = S::broadcast(bias);
  if constexpr (KH * KW + R + 1 <= kVectorRegisters) {
    // All the broadcast weights stay in registers beside the sums (3x3 with AVX-512): the input
    // rows in order, each vector feeding every output it meets.
    V wv[KH * KW];
    for (int t = 0; t < KH * KW; ++t) wv[t] = S::in_register(S::broadcast(w[t]));
#pragma GCC unroll 32
    for (int j = 0; j < (R - 1) * SH + KH; ++j) {
#pragma GCC unroll 8
      for (int kw = 0; kw < KW; ++kw) {
        const V v = input(j, kw);
#pragma GCC unroll 16
        for (int q = 0; q < R; ++q) {
          const int kh = j - q * SH;
          if (kh >= 0 && kh < KH) acc[q] += v * wv[kh * KW + kw];
        }
      }
    }
  } else {
    // Tap column by tap column, its KH weights held (5x5 and 7x7, and 3x3 with AVX2's 16
    // registers): each input vector is still loaded once, and a weight once per column, not
    // broadcast from memory into each of its R products. The columns are not unrolled: GCC would
    // schedule the loads of every column first and spill them (a 7x7 sweep of 8 rows spilled
    // over 200 vectors to the stack).
#pragma GCC unroll 1
    for (int kw = 0; kw < KW; ++kw) {
      V wc[KH];
#pragma GCC unroll 8
      for (int kh = 0; kh < KH; ++kh) wc[kh] = S::in_register(S::broadcast(w[kh * KW + kw]));
#pragma GCC unroll 32
      for (int j = 0; j < (R - 1) * SH + KH; ++j) {
        const V v = input(j, kw);
#pragma GCC unroll 16
        for (int q = 0; q < R; ++q) {
          const int kh = j - q * SH;
          if (kh >= 0 && kh < KH) acc[q] += v * wc[kh];
        }
      }
    }
  }
  for (int q = 0; q < rows; ++q) store_block<1>(out + q * out_step, {acc[q]}, lanes);
}

// NCHW forward for a square kernel of 3, 5 or 7 (K) with unit stride, or stride 2 and no
// dilation along H (SH): each task copies its input rows, zero-padded, into a buffer, each row as
// its sW column phases (phase r holds padded columns i * sW + r, so that every tap column is a
// contiguous run of one phase), then sweeps each column vector down its output rows R at a time
// (sweep_column). With unit stride, the rows of one sweep are dH apart, so that dilated kernels
// share loads the same way. With prefetch (the plan's, at stride 2), each input row copied first
// prefetches the row kSweepPrefetchRows on.
constexpr int64_t kSweepPrefetchRows = 8;
template <int K, int SH, typename scalar_t, typename acc_t>
void forward_nchw_sweep(const DepthwiseParams& p, bool prefetch, const scalar_t* in, const acc_t* w,
                        const scalar_t* bias, scalar_t* out) {
  constexpr int L = Simd<acc_t>::kLanes;
  constexpr int R = 8;
  const int64_t dH = p.dil_h, sW = p.stride_w, taps = K * K;
  const int64_t ncv = ceil_div(p.out_w, L);
  const int64_t Lp = ncv * L + (K - 1) * p.dil_w / sW;  // one phase of a row
  const int64_t Wr = sW * Lp;                            // a prepared row
  int64_t tap_off[K];
  for (int64_t kw = 0; kw < K; ++kw) tap_off[kw] = (kw * p.dil_w) % sW * Lp + kw * p.dil_w / sW;
  const int64_t planes = p.batch * p.out_channels;
  const int64_t rblocks = split_rows(planes, p.out_h);
  const int64_t rows_per = ceil_div(p.out_h, rblocks);
  // Rows of one sweep: dH apart in the input (unit stride) or consecutive.
  const int64_t row_gap = SH == 1 ? dH : 1;
  at::parallel_for(0, planes * rblocks, 1, [&](int64_t begin, int64_t end) {
    Buffer<acc_t> buf;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task / rblocks;
      const int64_t oh0 = (task % rblocks) * rows_per;
      const int64_t oh1 = std::min(p.out_h, oh0 + rows_per);
      if (oh0 >= oh1) continue;
      const int64_t n = plane / p.out_channels, co = plane % p.out_channels;
      const scalar_t* x = in + (n * p.channels + co / p.mult) * p.in_h * p.in_w;
      // Padded rows from oh0 * SH on (input row ih is padded row ih + pad_h): those the block
      // reads, then room for the rows a short last sweep reads for results it drops (left as
      // they are).
      const int64_t n_read = (oh1 - oh0 - 1) * SH + (K - 1) * dH + 1;
      buf.resize(std::max<int64_t>(buf.size(), (n_read + R * SH * row_gap) * Wr));
      for (int64_t r = 0; r < n_read; ++r) {
        const int64_t ih = oh0 * SH + r - p.pad_h;
        acc_t* dst = buf.data() + r * Wr;
        if (prefetch && ih + kSweepPrefetchRows >= 0 && ih + kSweepPrefetchRows < p.in_h) {
          const char* ahead = reinterpret_cast<const char*>(x + (ih + kSweepPrefetchRows) * p.in_w);
          for (int64_t b = 0; b < p.in_w * static_cast<int64_t>(sizeof(scalar_t)); b += 64) __builtin_prefetch(ahead + b);
        }
        if (ih < 0 || ih >= p.in_h) {
          std::fill(dst, dst + Wr, acc_t(0));
        } else if (sW == 1) {
          shifted_copy(dst, Wr, x + ih * p.in_w, p.in_w, p.pad_w);
        } else {  // stride 2: the plan gives sweeps no other
          two_phase_copy(dst, Lp, x + ih * p.in_w, p.in_w, p.pad_w);
        }
      }
      const acc_t* wc = w + co * taps;
      const acc_t b = bias ? static_cast<acc_t>(bias[co]) : acc_t(0);
      scalar_t* o = out + plane * p.out_h * p.out_w;
      for (int64_t ph = 0; ph < row_gap; ++ph) {
        for (int64_t oh = oh0 + ph; oh < oh1; oh += R * row_gap) {
          const int64_t rows = std::min<int64_t>(R, ceil_div(oh1 - oh, row_gap));
          for (int64_t c = 0; c < ncv; ++c) {
            auto sweep = [&](auto RC) {
              sweep_column<decltype(RC)::value, K, K, SH>(
                  o + oh * p.out_w + c * L, row_gap * p.out_w, rows,
                  std::min<int64_t>(L, p.out_w - c * L), buf.data() + (oh - oh0) * SH * Wr + c * L,
                  row_gap * Wr, tap_off, p.dil_w, wc, b);
            };
            if (rows > R / 2) {
              sweep(std::integral_constant<int, R>{});
            } else {
              sweep(std::integral_constant<int, R / 2>{});
            }
          }
        }
      }
    }
  });
}

}  // namespace

template <typename scalar_t>
void forward_nchw(const DepthwiseParams& p, const DwForwardPlan& plan, const scalar_t* in,
                  const scalar_t* weight, const scalar_t* bias, scalar_t* out) {
  using acc_t = acc_type_t<scalar_t>;
  if (plan.path == DwForward::kNchwChannelTiles) {
    forward_nchw_channel_tiles(p, plan.tiles, in, weight, bias, out);
    return;
  }
  const int64_t taps = p.kernel_h * p.kernel_w;
  const auto w = to_acc<scalar_t, acc_t>(weight, p.out_channels * taps);
  const int64_t planes = p.batch * p.out_channels;
  const int64_t n_round = ceil_div(p.out_w, block_for<acc_t>(p.out_w)) * block_for<acc_t>(p.out_w);
  if (plan.path == DwForward::kNchwSweep) {
    with_kernel_width(p.kernel_w, [&](auto KC) {
      constexpr int K = decltype(KC)::value;
      if constexpr (K > 0) {
        if (p.stride_h == 1) {
          forward_nchw_sweep<K, 1>(p, plan.prefetch, in, w.data(), bias, out);
        } else {
          forward_nchw_sweep<K, 2>(p, plan.prefetch, in, w.data(), bias, out);
        }
      }
    });
    return;
  }
  if (plan.path == DwForward::kNchwFlat) {
    forward_nchw_flat(p, in, w.data(), bias, out);
    return;
  }
  const int64_t rblocks = split_rows(planes, p.out_h);
  const int64_t rows_per = ceil_div(p.out_h, rblocks);
  const TapRows t = forward_taps(n_round, p.kernel_w, p.stride_w, p.dil_w);
  // Pairs of output rows share all but one input row when stride and dilation along H are 1.
  const bool pairs = p.stride_h == 1 && p.dil_h == 1 && p.kernel_h > 1;
  at::parallel_for(0, planes * rblocks, 1, [&](int64_t begin, int64_t end) {
    Buffer<acc_t> buf;
    Buffer<Entry<acc_t>> entries(p.kernel_h);
    Buffer<Entry2<acc_t>> entries2(p.kernel_h + 1);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task / rblocks;
      const int64_t oh0 = (task % rblocks) * rows_per;
      const int64_t oh1 = std::min(p.out_h, oh0 + rows_per);
      if (oh0 >= oh1) continue;
      const int64_t n = plane / p.out_channels, co = plane % p.out_channels;
      const scalar_t* x = in + (n * p.channels + co / p.mult) * p.in_h * p.in_w;
      // Input rows the block reads.
      const int64_t ih_lo = std::max<int64_t>(0, oh0 * p.stride_h - p.pad_h);
      const int64_t ih_hi = std::min<int64_t>(
          p.in_h, (oh1 - 1) * p.stride_h - p.pad_h + (p.kernel_h - 1) * p.dil_h + 1);
      buf.resize(std::max<int64_t>(ih_hi - ih_lo, 0) * t.len);
      for (int64_t ih = ih_lo; ih < ih_hi; ++ih)
        prepare_forward_row(t, buf.data() + (ih - ih_lo) * t.len, x + ih * p.in_w, p.in_w, n_round,
                            p.kernel_w, p.stride_w, p.dil_w, p.pad_w);
      const acc_t* wc = w.data() + co * taps;
      const acc_t b = bias ? static_cast<acc_t>(bias[co]) : acc_t(0);
      int64_t oh = oh0;
      for (; pairs && oh + 1 < oh1; oh += 2) {
        // Input rows oh - pad .. oh + 1 - pad + kH - 1; row ih is tap ih - (oh - pad) of output
        // row oh and tap ih - (oh + 1 - pad) of row oh + 1.
        int64_t ne = 0;
        for (int64_t j = 0; j <= p.kernel_h; ++j) {
          const int64_t ih = oh - p.pad_h + j;
          if (ih < 0 || ih >= p.in_h) continue;
          entries2[ne++] = {buf.data() + (ih - ih_lo) * t.len,
                            j < p.kernel_h ? wc + j * p.kernel_w : nullptr,
                            j > 0 ? wc + (j - 1) * p.kernel_w : nullptr};
        }
        scalar_t* o = out + (plane * p.out_h + oh) * p.out_w;
        with_block_kw<acc_t>(p.out_w, p.kernel_w, [&](auto B, auto KC) {
          correlate_row2<decltype(B)::value, decltype(KC)::value>(o, o + p.out_w, p.out_w, b,
                                                                  entries2.data(), ne,
                                             t.offset.data(), p.kernel_w);
        });
      }
      for (; oh < oh1; ++oh) {
        int64_t ne = 0;
        for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
          const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
          if (ih < 0 || ih >= p.in_h) continue;
          entries[ne++] = {buf.data() + (ih - ih_lo) * t.len, wc + kh * p.kernel_w};
        }
        with_block_kw<acc_t>(p.out_w, p.kernel_w, [&](auto B, auto KC) {
          correlate_row<decltype(B)::value, decltype(KC)::value>(
              out + (plane * p.out_h + oh) * p.out_w, p.out_w, b,
                                            entries.data(), ne, t.offset.data(), p.kernel_w);
        });
      }
    }
  });
}

template void forward_nchw<float>(const DepthwiseParams&, const DwForwardPlan&, const float*, const float*, const float*, float*);
template void forward_nchw<double>(const DepthwiseParams&, const DwForwardPlan&, const double*, const double*, const double*, double*);
template void forward_nchw<c10::Half>(const DepthwiseParams&, const DwForwardPlan&, const c10::Half*, const c10::Half*, const c10::Half*, c10::Half*);
template void forward_nchw<c10::BFloat16>(const DepthwiseParams&, const DwForwardPlan&, const c10::BFloat16*, const c10::BFloat16*, const c10::BFloat16*, c10::BFloat16*);
}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

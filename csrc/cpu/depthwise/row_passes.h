// Rows of outputs with L channels in the vector lanes, for the geometry of nearly every depthwise
// layer of real networks: kernel width KW in {3, 5, 7}, stride SW in {1, 2}, no dilation along
// W (a dilated row at unit stride runs as interleaved undilated ones, below), padding (KW - 1) / 2
// and an input out_w * SW columns wide. A row is computed in passes of N
// output columns whose sums stay in registers across the taps; which taps of a pass read inside
// the input is known at compile time (the left edge pass, the right edge pass, interior passes,
// or a whole narrow row), so no tap in the padding is issued and no padding is ever read or
// stored. The kernel rows are the caller's (those inside the input).
//
// Pixels come from anywhere with a fixed pixel stride: a tile of L-channel pixels (the NCHW
// channel tiles, stride L) or a channels_last tensor (stride C, its L channels at the pixel), in
// any scalar type (converted on load); results go to a buffer or a channels_last tensor the same
// way. MASK: the last block of channels holds `lanes` < L channels (masked loads and stores).
#pragma once

#include "../kernel_namespace.h"

#include <cstdint>
#include <type_traits>

#include "../simd.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

// Where a pass's pixels are: src points at input column 0 of the first kernel row; row_step
// elements to the next kernel row, src_ps between pixels; dst at output column 0, dst_ps apart.
template <typename src_t, typename dst_t, typename acc_t>
struct RowIO {
  const src_t* src;
  int64_t src_ps, row_step;
  dst_t* dst;
  int64_t dst_ps;
  const acc_t* w;     // [kh][kw][L]
  const acc_t* bias;  // [L]
  int64_t kh_lo, kh_hi, lanes;
  // Rows to prefetch (pixel column 0 of the first, then pf_step apart), read at src_ps like src:
  // those the next row of outputs adds to its window (none: pf_rows 0).
  const src_t* pf = nullptr;
  int64_t pf_step = 0, pf_rows = 0;
  dst_t* pf_out = nullptr;  // the next row of outputs, dst_ps apart like dst

  // Phase r of a row dilated by dil (row_of_kind): its columns r, r + dil, ...
  RowIO phase(int64_t r, int64_t dil) const {
    RowIO p = *this;
    p.src += r * src_ps;
    p.src_ps *= dil;
    p.dst += r * dst_ps;
    p.dst_ps *= dil;
    if (pf) p.pf += r * src_ps;
    if (pf_out) p.pf_out += r * dst_ps;
    return p;
  }
};

// EDGE: 1 the pass starts at column 0 (its left taps may fall before the input), 2 it ends at
// the row's last column (its right taps may fall past the input), 3 both (a whole row of N), 0
// neither.
template <int KW, int SW, int N, int EDGE>
struct PassShape {
  static constexpr int P = (KW - 1) / 2;
  static constexpr bool valid(int q, int kw) {
    return (!(EDGE & 1) || q * SW + kw - P >= 0) && (!(EDGE & 2) || (q - N) * SW + kw - P < 0);
  }
  // The pixels a kernel row of the pass spans, and whether some valid tap reads pixel j.
  static constexpr int J = (N - 1) * SW + KW;
  static constexpr bool read(int j) {
    for (int q = 0; q < N; ++q) {
      const int kw = j - q * SW;
      if (kw >= 0 && kw < KW && valid(q, kw)) return true;
    }
    return false;
  }
};

// The pixel after p, ps elements on. The compiler is kept from seeing that the pixels of a row
// are p + j * ps: it would keep each j * ps in a register of its own (17 of them for a pass of 8
// outputs at stride 2), spill them, and reload one from the stack for every load.
template <typename T>
inline const T* next_pixel(const T* p, int64_t ps) {
  p += ps;
  asm("" : "+r"(p));
  return p;
}

// Into L2, the P pixels from pixel `first` (ps apart) of `rows` rows (step apart) from p, for
// writing with WRITE. A pass prefetches, for its own columns, what the next row of outputs will
// read or write, so that those rows arrive while this one is computed. L2, not L1 (locality 2,
// prefetcht1): a row of outputs ahead is more than L1 holds beside the pass's own rows (the next
// rows of (8, 96, 80, 80) 3x3 s2 are 60 KB), and into L1 the lines were evicted before their use.
// On the Zen 4 EPYC, one thread, forward: that layer 1.3-1.75 ms without prefetches (torch
// 1.2-1.3), 1.6 into L1, 0.75-0.79 into L2; (8, 144, 40, 40) 3x3 0.75-1.16 -> 0.49-0.52 ms.
template <int P, bool WRITE, typename T>
inline void prefetch_rows(const T* p, int64_t rows, int64_t step, int64_t first, int64_t ps) {
  for (int64_t r = 0; r < rows; ++r) {
#pragma GCC unroll 16
    for (int j = 0; j < P; ++j) __builtin_prefetch(p + r * step + (first + j) * ps, WRITE ? 1 : 0, 2);
  }
}

// The io's fields are read once into locals: the stores (memcpy, which may alias anything) would
// otherwise reload them. A masked block of exactly L / 2 channels with no conversion (float or
// double) runs as HALF: vectors of half the width, which cost half a full vector's FMA issue on
// cores that split full-width FMAs (AMD's Zen 4), where a masked full-width block costs a whole
// one. On the Zen 4 EPYC, one thread, float32: (8, 24, 80, 80) 3x3 0.433 -> 0.402 ms, (8, 40, 80,
// 80) 3x3 0.696 -> 0.655, (8, 24, 80, 80) 5x5 0.776 -> 0.678, (8, 40, 40, 40) 5x5 0.288 -> 0.251.
template <int KW, int SW, int N, int EDGE, bool MASK, bool HALF = false, typename src_t, typename dst_t,
          typename acc_t>
inline void row_pass(const RowIO<src_t, dst_t, acc_t>& io, int64_t base) {
  constexpr int L = Simd<acc_t>::kLanes;  // the weights' and bias' block stride
  static_assert(!HALF || (!MASK && std::is_same_v<src_t, acc_t> && std::is_same_v<dst_t, acc_t>),
                "half-width blocks are unmasked and unconverted");
  if constexpr (MASK && std::is_same_v<src_t, acc_t> && std::is_same_v<dst_t, acc_t>) {
    if (io.lanes == L / 2) return row_pass<KW, SW, N, EDGE, false, true>(io, base);
  }
  using S = Simd<acc_t, HALF ? L / 2 : L>;
  using V = typename S::vec;
  using Cin = Cast<src_t, acc_t>;
  using Cout = Cast<dst_t, acc_t>;
  using R = PassShape<KW, SW, N, EDGE>;
  if (io.pf_rows) prefetch_rows<N * SW, false>(io.pf, io.pf_rows, io.pf_step, base * SW, io.src_ps);
  if (io.pf_out) prefetch_rows<N, true>(io.pf_out, 1, 0, base, io.dst_ps);
  const int64_t ps = io.src_ps, row_step = io.row_step, lanes = io.lanes, rows = io.kh_hi - io.kh_lo;
  const src_t* x0 = io.src + io.kh_lo * row_step + (base * SW - R::P) * ps;  // may lie before the row
  const acc_t* wk = io.w + io.kh_lo * KW * L;
  dst_t* const dst = io.dst + base * io.dst_ps;
  const int64_t dps = io.dst_ps;
  V acc[N];
  const V b = S::load(io.bias);
#pragma GCC unroll 16
  for (int q = 0; q < N; ++q) acc[q] = b;
  for (int64_t r = 0; r < rows; ++r, x0 += row_step, wk += KW * L) {
    V wv[KW];
#pragma GCC unroll 8
    for (int kw = 0; kw < KW; ++kw) wv[kw] = S::load(wk + kw * L);
    // The row's pixels in order, each loaded once into the sums of every output whose window
    // holds it (for each output, its taps in order, as a plain loop over taps would add them).
    const src_t* px = x0;
#pragma GCC unroll 32
    for (int j = 0; j < R::J; ++j) {
      if (R::read(j)) {
        V x;
        if constexpr (HALF) {
          x = S::in_register(S::load(px));
        } else {
          x = S::in_register(MASK ? Cin::load_first(px, lanes) : Cin::load(px));
        }
#pragma GCC unroll 16
        for (int q = 0; q < N; ++q) {
          const int kw = j - q * SW;
          if (kw >= 0 && kw < KW && R::valid(q, kw)) acc[q] += wv[kw] * x;
        }
      }
      px = next_pixel(px, ps);
    }
  }
#pragma GCC unroll 16
  for (int q = 0; q < N; ++q) {
    if constexpr (HALF) {
      S::store(dst + q * dps, acc[q]);
    } else if (MASK) {
      Cout::store_first(dst + q * dps, acc[q], lanes);
    } else {
      Cout::store(dst + q * dps, acc[q]);
    }
  }
}

// The output widths computed as one whole-row pass; wider rows (16 and more) go in passes of 8.
template <typename F>
inline bool with_narrow_width(int64_t out_w, F&& f) {
  switch (out_w) {
    case 5: return f(std::integral_constant<int, 5>{}), true;
    case 7: return f(std::integral_constant<int, 7>{}), true;
    case 10: return f(std::integral_constant<int, 10>{}), true;
    case 14: return f(std::integral_constant<int, 14>{}), true;
    default: return false;
  }
}

// The weight gradient's operands for row passes: g at output column 0 of the row (g_ps apart), x
// at input column 0 of its first kernel row (x_ps apart, row_step to the next kernel row), acc
// the sums of that kernel row's taps ([kh][kw][L] from it), `rows` kernel rows.
template <typename src_t, typename acc_t>
struct WeightIO {
  const src_t* g;
  int64_t g_ps;
  const src_t* x;
  int64_t x_ps, row_step;
  acc_t* acc;
  int64_t rows, lanes;
  // As RowIO's: the input rows the next row of gradients adds (at x_ps), and that row (at g_ps).
  const src_t* pf = nullptr;
  int64_t pf_step = 0, pf_rows = 0;
  const src_t* pf_g = nullptr;

  // Phase r of a row dilated by dil (row_of_kind), as RowIO's.
  WeightIO phase(int64_t r, int64_t dil) const {
    WeightIO p = *this;
    p.g += r * g_ps;
    p.g_ps *= dil;
    p.x += r * x_ps;
    p.x_ps *= dil;
    if (pf) p.pf += r * x_ps;
    if (pf_g) p.pf_g += r * g_ps;
    return p;
  }
};

// For each tap (kh, kw) of the io's rows, acc[(kh * KW + kw) * L] += the sum over the pass's
// columns whose tap reads inside the input of g[col] * x, in two chains (even and odd columns)
// added at the end: a fixed order. The pass's gradients stay in registers across all taps. Where
// the registers hold a pair of chains for every tap of a kernel row as well, the row's pixels are
// read in order, each loaded once into the chains of every tap that reads it (the same chains in
// the same order, so the same sums); else tap by tap, each pixel loaded once per tap.
template <int KW, int SW, int N, int EDGE, bool MASK, typename src_t, typename acc_t>
inline void weight_pass(const WeightIO<src_t, acc_t>& io, int64_t base) {
  using S = Simd<acc_t>;
  using V = typename S::vec;
  using Cin = Cast<src_t, acc_t>;
  constexpr int L = S::kLanes;
  using R = PassShape<KW, SW, N, EDGE>;
  constexpr bool kByPixel = 2 * KW + N + 1 <= kVectorRegisters;
  prefetch_rows<N * SW, false>(io.pf, io.pf_rows, io.pf_step, base * SW, io.x_ps);
  prefetch_rows<N, false>(io.pf_g, io.pf_g ? 1 : 0, 0, base, io.g_ps);
  auto load = [&](const src_t* px) { return MASK ? Cin::load_first(px, io.lanes) : Cin::load(px); };
  V gv[N];
  for (int q = 0; q < N; ++q) gv[q] = load(io.g + (base + q) * io.g_ps);
  for (int64_t kh = 0; kh < io.rows; ++kh) {
    const int64_t x0 = kh * io.row_step + (base * SW - R::P) * io.x_ps;  // may lie before the row
    acc_t* const sums = io.acc + kh * KW * L;
    if constexpr (kByPixel) {
      V a[KW][2] = {};
      const src_t* px = io.x + x0;
#pragma GCC unroll 32
      for (int j = 0; j < R::J; ++j) {
        if (R::read(j)) {
          const V x = S::in_register(load(px));
#pragma GCC unroll 16
          for (int q = 0; q < N; ++q) {
            const int kw = j - q * SW;
            if (kw >= 0 && kw < KW && R::valid(q, kw)) a[kw][q & 1] += gv[q] * x;
          }
        }
        px = next_pixel(px, io.x_ps);
      }
#pragma GCC unroll 8
      for (int kw = 0; kw < KW; ++kw) S::store(sums + kw * L, S::load(sums + kw * L) + (a[kw][0] + a[kw][1]));
    } else {
#pragma GCC unroll 8
      for (int kw = 0; kw < KW; ++kw) {
        V a[2] = {V{}, V{}};
#pragma GCC unroll 16
        for (int q = 0; q < N; ++q) {
          if (R::valid(q, kw)) a[q & 1] += gv[q] * load(io.x + (x0 + (q * SW + kw) * io.x_ps));
        }
        S::store(sums + kw * L, S::load(sums + kw * L) + (a[0] + a[1]));
      }
    }
  }
}

// Calls pass(integral_constant N, integral_constant EDGE, first column) over a row of out_w >= 16
// outputs: the left edge, interior passes of 8 (then 4, 2, 1) and the right edge, in that order.
template <typename F>
inline void wide_row_passes(int64_t out_w, F&& pass) {
  using I0 = std::integral_constant<int, 0>;
  pass(std::integral_constant<int, 8>{}, std::integral_constant<int, 1>{}, int64_t(0));
  int64_t c = 8;
  const int64_t end = out_w - 8;
  for (; c + 8 <= end; c += 8) pass(std::integral_constant<int, 8>{}, I0{}, c);
  if (c + 4 <= end) {
    pass(std::integral_constant<int, 4>{}, I0{}, c);
    c += 4;
  }
  if (c + 2 <= end) {
    pass(std::integral_constant<int, 2>{}, I0{}, c);
    c += 2;
  }
  if (c < end) pass(std::integral_constant<int, 1>{}, I0{}, c);
  pass(std::integral_constant<int, 8>{}, std::integral_constant<int, 2>{}, end);
}

// The row kinds with_row_kernel picks once per tensor, so that the code of a row holds only its
// own passes (all of them inlined in one loop over rows and channel blocks spilled the registers
// of every pass shape in each block's set-up): NW > 0 a whole row of NW outputs in one pass (no
// dilation), kWideRow a row of 16 and more in passes of 8 (no dilation), kDilatedRow a row
// dilated along W whose phases are all wide ones (16 and more, in passes of 8), and NW <
// kDilatedRow a dilated row whose phases are all -NW wide, one whole-row pass each (DeepLab's
// 10-wide rows at dilation 2: two phases of 5). Phases differ by one column at most, and no two
// pass widths below 17 do, so a row plan.cpp's row_shape admits is one or the other. Narrow
// phases ran 1.6-1.8x slower in one kind with the wide passes than in their own, on the Zen 4
// EPYC, one thread, forward, us (torch): (8, 960, 10, 10) 5x5 d2 channels_last 504 -> 312
// (418-434), NCHW 827 -> 563 (658-681); (8, 672, 10, 10) NCHW 667 -> 362 (461-464).
constexpr int kWideRow = 0;
constexpr int kDilatedRow = -1;

// A row dilated by `dil` along W at unit stride is `dil` interleaved undilated rows: phase r
// holds the output columns r, r + dil, ... and reads only the input columns r, r + dil, ...,
// padded there by the undilated (KW - 1) / 2. Each phase runs the passes above with the pixel
// strides scaled by dil (the io's phase(r, dil); plan.cpp: row_shape admits a dilation when every
// phase is a width they take), in order: a fixed order for the weight gradient's sums.
//
// Calls pass(io, integral_constant N, integral_constant EDGE, first column) for the passes of a
// row of kind NW and out_w outputs, io a RowIO or a WeightIO.
template <int NW, typename IO, typename Pass>
inline void row_of_kind(const IO& io, int64_t out_w, int64_t dil, Pass&& pass) {
  if constexpr (NW > 0) {
    pass(io, std::integral_constant<int, NW>{}, std::integral_constant<int, 3>{}, int64_t(0));
  } else if constexpr (NW < kDilatedRow) {
    for (int64_t r = 0; r < dil; ++r)
      pass(io.phase(r, dil), std::integral_constant<int, -NW>{}, std::integral_constant<int, 3>{}, int64_t(0));
  } else if constexpr (NW == kWideRow) {
    wide_row_passes(out_w, [&](auto N, auto EDGE, int64_t c) { pass(io, N, EDGE, c); });
  } else {
    for (int64_t r = 0; r < dil; ++r) {
      const IO phase = io.phase(r, dil);
      wide_row_passes((out_w - r + dil - 1) / dil, [&](auto N, auto EDGE, int64_t c) { pass(phase, N, EDGE, c); });
    }
  }
}

// The outputs of a row of kind NW (row_pass).
template <int KW, int SW, int NW, bool MASK, typename src_t, typename dst_t, typename acc_t>
inline void row_outputs(const RowIO<src_t, dst_t, acc_t>& io, int64_t out_w, int64_t dil) {
  row_of_kind<NW>(io, out_w, dil, [](const auto& at, auto N, auto EDGE, int64_t c) {
    row_pass<KW, SW, decltype(N)::value, decltype(EDGE)::value, MASK>(at, c);
  });
}

// The outputs of a row of kind NW (kWideRow or kDilatedRow) for the channel blocks [b0, b1),
// swept column by column: each pass position for every block in turn, so that the loads of
// neighbouring blocks (one pixel's channels, contiguous) follow each other while the group's
// pixels stay in L1 for the next pass. io_of(blk): block blk's RowIO; masked_last: block b1 - 1
// holds fewer than L channels. A dilated row goes phase by phase (row_of_kind).
template <int KW, int SW, int NW, typename IoOf>
inline void swept_row_outputs(IoOf&& io_of, int64_t b0, int64_t b1, bool masked_last, int64_t out_w,
                              int64_t dil) {
  static_assert(NW == kWideRow || NW == kDilatedRow, "narrow rows go block by block");
  const int64_t full1 = masked_last ? b1 - 1 : b1;
  auto sweep = [&](auto&& at, auto&& passes) {
    passes([&](auto N, auto EDGE, int64_t c) {
      constexpr int kN = decltype(N)::value, kE = decltype(EDGE)::value;
      for (int64_t blk = b0; blk < full1; ++blk) row_pass<KW, SW, kN, kE, false>(at(blk), c);
      if (full1 < b1) row_pass<KW, SW, kN, kE, true>(at(full1), c);
    });
  };
  if constexpr (NW == kWideRow) {
    sweep(io_of, [&](auto&& pass) { wide_row_passes(out_w, pass); });
  } else {
    for (int64_t r = 0; r < dil; ++r) {
      sweep([&](int64_t blk) { return io_of(blk).phase(r, dil); },
            [&](auto&& pass) { wide_row_passes((out_w - r + dil - 1) / dil, pass); });
    }
  }
}

// The weight gradient's sums of a row of kind NW (weight_pass).
template <int KW, int SW, int NW, bool MASK, typename src_t, typename acc_t>
inline void weight_row(const WeightIO<src_t, acc_t>& io, int64_t out_w, int64_t dil) {
  row_of_kind<NW>(io, out_w, dil, [](const auto& at, auto N, auto EDGE, int64_t c) {
    weight_pass<KW, SW, decltype(N)::value, decltype(EDGE)::value, MASK>(at, c);
  });
}

// Calls f(integral_constant KW, integral_constant SW, integral_constant NW) for a geometry the
// plan gave row passes (plan.cpp: row_shape): NW the row kind (above) of out_w outputs dilated
// by dil_w.
template <typename F>
inline void with_row_kernel(int64_t kernel_w, int64_t stride_w, int64_t out_w, int64_t dil_w, F&& f) {
  auto by_width = [&](auto KW, auto SW) {
    if (dil_w != 1) {
      bool narrow = false;  // row_shape admits dilated rows at unit stride only: no others built
      if constexpr (decltype(SW)::value == 1) {
        narrow = out_w % dil_w == 0 &&
                 with_narrow_width(out_w / dil_w, [&](auto NW) { f(KW, SW, std::integral_constant<int, -NW>{}); });
      }
      if (!narrow) f(KW, SW, std::integral_constant<int, kDilatedRow>{});
    } else if (!with_narrow_width(out_w, [&](auto NW) { f(KW, SW, NW); })) {
      f(KW, SW, std::integral_constant<int, kWideRow>{});
    }
  };
  auto by_sw = [&](auto KW) {
    if (stride_w == 1) {
      by_width(KW, std::integral_constant<int, 1>{});
    } else {
      by_width(KW, std::integral_constant<int, 2>{});
    }
  };
  if (kernel_w == 3) {
    by_sw(std::integral_constant<int, 3>{});
  } else if (kernel_w == 5) {
    by_sw(std::integral_constant<int, 5>{});
  } else {
    by_sw(std::integral_constant<int, 7>{});
  }
}

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

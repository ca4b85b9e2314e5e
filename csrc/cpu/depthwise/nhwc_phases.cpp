// channels_last grad_input by phases of the input columns (m = 1, the strides the flipped forward
// does not serve).
//
// Input column iw = rho + s * j (s: stride_w, rho < s: its phase) receives from the kernel columns
// kw with (rho + pad_w - kw * dil_w) divisible by s, each from grad_output column j + off(kw), where
// off(kw) = (rho + pad_w - kw * dil_w) / s. Within one input row and one phase, the grad_output
// rows and kernel columns that contribute are the same for every j, so the phase is a unit-stride
// correlation along j: up to 8 columns at a time (the plan's column_block), the sums of a group of
// channels in registers over every (row, column) term, each weight vector loaded once for the
// columns. Columns interior to every phase go block by block, each block for every phase in turn;
// the columns of a phase where some term falls outside grad_output (the first and last few) go
// pixel by pixel.
//
// At stride 2 without dilation along W with 3-wide kernels (MobileNet's downsampling layers), the
// two phases' column j are the input pixels 2j and 2j + 1, and their kernel columns read grad_output
// columns a few apart: the common interior goes in pairs of pixels (pair_block), both phases at
// once, each grad_output vector loaded once for every product it meets, the pixels written in order.
//
// Terms are summed in the order of the kernel rows, then columns, from zero, as the per-pixel
// kernel that served m = 1 before summed them (same bits).
#include <limits>

#include "kernels.h"
#include "nhwc_blocks.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

// One phase's kernel columns and the range of j where all of them fall inside grad_output.
struct Phase {
  int64_t first = 0;         // input column of j = 0
  int64_t columns = 0;       // input columns in the phase
  Buffer<int64_t> kw, off;   // kernel columns, ascending, and their grad_output column offsets
  int64_t j_lo = 0, j_hi = 0;  // [j_lo, j_hi): every kernel column inside (empty: j_lo == j_hi)
};

Buffer<Phase> column_phases(const DepthwiseParams& p) {
  const int64_t s = p.stride_w;
  Buffer<Phase> phases(std::min(s, p.in_w));
  for (int64_t rho = 0; rho < static_cast<int64_t>(phases.size()); ++rho) {
    Phase& ph = phases[rho];
    ph.first = rho;
    ph.columns = ceil_div(p.in_w - rho, s);
    int64_t lo = 0, hi = ph.columns;
    for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
      const int64_t q = rho + p.pad_w - kw * p.dil_w;
      if (floor_div(q, s) * s != q) continue;
      const int64_t off = floor_div(q, s);
      ph.kw.push_back(kw);
      ph.off.push_back(off);
      lo = std::max(lo, -off);
      hi = std::min(hi, p.out_w - off);
    }
    ph.j_lo = std::min(lo, ph.columns);
    ph.j_hi = std::max(ph.j_lo, hi);
  }
  return phases;
}

// P input columns of one phase, K vectors of W channels from cb: out[q * out_step + k * W] = sum
// over the terms of x_e[at + q * Co + cb + k * W] * w_e[cb + k * W], the terms' pointers at the
// phase's first interior column and channel 0 (at: the block's offset from there).
template <int P, int K, int W, typename scalar_t, typename acc_t>
inline void phase_pixels(scalar_t* __restrict out, int64_t out_step, const ChannelTerm<acc_t>* terms,
                         int64_t n_terms, int64_t at, int64_t cb, int64_t Co) {
  using S = Simd<acc_t, W>;
  using V = typename S::vec;
  V acc[P][K];
  for (int q = 0; q < P; ++q)
    for (int k = 0; k < K; ++k) acc[q][k] = S::broadcast(acc_t(0));
  for (int64_t e = 0; e < n_terms; ++e) {
    const acc_t* x = terms[e].x + at + cb;
    const acc_t* w = terms[e].w + cb;
    V wv[K];
    for (int k = 0; k < K; ++k) wv[k] = S::load(w + k * W);
    for (int q = 0; q < P; ++q)
      for (int k = 0; k < K; ++k) acc[q][k] += S::load(x + q * Co + k * W) * wv[k];
  }
  for (int k = 0; k < K; ++k) {
    V col[P];
    for (int q = 0; q < P; ++q) col[q] = acc[q][k];
    store_pixels<P>(out + k * W, out_step, col);
  }
}

// Stride 2 along W, kernel width K, no dilation, padding of parity E: phase rho holds the kernel
// columns kw = rho + E (mod 2), and pair j's pixel 2j + rho reads grad_output column
// j + base + rel(rho, kw), rel = (rho + E - kw) / 2 (base: the padding's even part halved).
template <int K, int E>
struct PairTaps {
  static constexpr bool used(int rho, int kw) { return (rho + E - kw) % 2 == 0; }
  static constexpr int rel(int rho, int kw) { return (rho + E - kw) / 2; }
  static constexpr int bound(bool upper) {
    int b = upper ? -K : K;
    for (int rho = 0; rho < 2; ++rho)
      for (int kw = 0; kw < K; ++kw)
        if (used(rho, kw)) b = upper ? std::max(b, rel(rho, kw)) : std::min(b, rel(rho, kw));
    return b;
  }
  static constexpr int lo = bound(false), span = bound(true) - bound(false) + 1;
};

// P pairs of input pixels (2j .. 2j + 2P - 1, written in order), V vectors of channels from c:
// rows[r] the grad_output rows, x0 = the first column of the pairs' window (j + base + lo),
// wrow[r] the weights of row r's kernel row ([K][C]). Each grad_output vector of the window is
// loaded once per row and feeds every product it meets; a pixel's sums run over the rows, then
// its kernel columns in ascending order (the window's columns descending), as phase_pixels sums.
// stream: non-temporal stores (out and C * sizeof(acc_t) multiples of 64 bytes).
template <int K, int E, int P, int V, typename scalar_t, typename acc_t>
inline void pair_block(scalar_t* __restrict out, const acc_t* const* rows, const acc_t* const* wrow,
                       int64_t n_rows, int64_t x0, int64_t c, int64_t C, bool stream) {
  using S = Simd<acc_t>;
  using Vec = typename S::vec;
  using T = PairTaps<K, E>;
  constexpr int L = S::kLanes;
  Vec acc[P][2][V];
  for (int q = 0; q < P; ++q)
    for (int rho = 0; rho < 2; ++rho)
      for (int v = 0; v < V; ++v) acc[q][rho][v] = S::broadcast(acc_t(0));
  constexpr int kWindow = P + T::span - 1;
  for (int64_t r = 0; r < n_rows; ++r) {
    // A pointer per window column and kernel column, so that the vectors are a constant
    // displacement from them (offsets of run-time multiples of C would outnumber the registers).
    const acc_t* xs[kWindow];
    const acc_t* ws[K];
    for (int s = 0; s < kWindow; ++s) xs[s] = rows[r] + (x0 + s) * C + c;
    for (int kw = 0; kw < K; ++kw) ws[kw] = wrow[r] + kw * C + c;
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) {
      Vec wv[K];
#pragma GCC unroll 8
      for (int kw = 0; kw < K; ++kw) wv[kw] = S::in_register(S::load(ws[kw] + v * L));
#pragma GCC unroll 16
      for (int s = kWindow - 1; s >= 0; --s) {
        const Vec xv = S::load(xs[s] + v * L);
#pragma GCC unroll 8
        for (int q = 0; q < P; ++q)
#pragma GCC unroll 2
          for (int rho = 0; rho < 2; ++rho)
#pragma GCC unroll 8
            for (int kw = 0; kw < K; ++kw)
              if (T::used(rho, kw) && q + T::rel(rho, kw) - T::lo == s) acc[q][rho][v] += xv * wv[kw];
      }
    }
  }
  if constexpr (std::is_same_v<scalar_t, acc_t> && S::kStreams) {
    if (stream) {
      for (int q = 0; q < P; ++q)
        for (int rho = 0; rho < 2; ++rho)
          for (int v = 0; v < V; ++v) S::stream(out + (2 * q + rho) * C + v * L, acc[q][rho][v]);
      return;
    }
  }
  for (int q = 0; q < P; ++q)
    for (int rho = 0; rho < 2; ++rho) {
      Vec col[V];
      for (int v = 0; v < V; ++v) col[v] = acc[q][rho][v];
      store_pixels<V>(out + (2 * q + rho) * C, L, col);
    }
}

// Calls f(PairShape<3, E>{}) for the stride-2 rows that the plan gives pairs (kernel width 3: at 5,
// pairs measured 10% slower than the phases' blocks).
template <int K, int E>
struct PairShape {};
template <typename F>
inline void with_pair_shape(const DepthwiseParams& p, F&& f) {
  if (p.pad_w % 2 != 0) {
    f(PairShape<3, 1>{});
  } else {
    f(PairShape<3, 0>{});
  }
}

// One input row's work: its grad_output rows (as acc_t) and each phase's terms.
template <typename scalar_t, typename acc_t>
struct PhaseRow {
  const DepthwiseParams& p;
  const Buffer<Phase>& phases;
  const acc_t* wt;          // [taps][C]
  const Buffer<Run>& runs;  // the channels in vector runs
  const acc_t* zeros;       // C zeros
  const int64_t max_block;  // columns per block: 8, or 1 (see kernels.h)
  const bool use_pairs, stream;  // the plan's pairs; its stream where gi is aligned for it
  Buffer<int64_t> kh;       // kernel rows of the grad_output rows, ascending
  Buffer<const acc_t*> grow;
  Buffer<const acc_t*> wrow;  // the weights of their kernel rows ([kW][C] each)
  Buffer<acc_t> converted;
  // Each phase's terms at its column j_lo and channel 0: terms[first[i], first[i + 1]) for phase
  // i, in the order of their rows, then kernel columns; edge_terms for one edge pixel.
  Buffer<ChannelTerm<acc_t>> terms, edge_terms;
  Buffer<int64_t> first;

  PhaseRow(const DepthwiseParams& params, const Buffer<Phase>& ph, const acc_t* w, const Buffer<Run>& r,
           const acc_t* z, const DwBackwardInputPlan& plan, bool streamed)
      : p(params), phases(ph), wt(w), runs(r), zeros(z), max_block(std::clamp<int64_t>(plan.column_block, 1, 8)),
        use_pairs(plan.pairs && ph.size() == 2), stream(streamed), first(ph.size() + 1) {}

  // The grad_output rows input row ih of image n receives from, and the phases' terms.
  void load_rows(const scalar_t* go, int64_t n, int64_t ih) {
    const int64_t C = p.channels;
    grad_output_rows(p, go, n, ih, kh, grow, converted);
    wrow.resize(kh.size());
    for (size_t r = 0; r < kh.size(); ++r) wrow[r] = wt + kh[r] * p.kernel_w * C;
    terms.clear();
    for (size_t i = 0; i < phases.size(); ++i) {
      const Phase& ph = phases[i];
      first[i] = static_cast<int64_t>(terms.size());
      if (ph.j_lo == ph.j_hi) continue;
      for (size_t r = 0; r < grow.size(); ++r)
        for (size_t t = 0; t < ph.kw.size(); ++t)
          terms.push_back({grow[r] + (ph.j_lo + ph.off[t]) * C, wt + (kh[r] * p.kernel_w + ph.kw[t]) * C});
    }
    first[phases.size()] = static_cast<int64_t>(terms.size());
    edge_terms.resize(std::max<size_t>(grow.size() * p.kernel_w, 1));
  }

  // Input column first + s * j of a phase, with the terms that fall inside grad_output.
  void edge_pixel(scalar_t* row, const Phase& ph, int64_t j) {
    const int64_t C = p.channels;
    int64_t ne = 0;
    for (size_t r = 0; r < grow.size(); ++r)
      for (size_t t = 0; t < ph.kw.size(); ++t) {
        const int64_t ow = j + ph.off[t];
        if (ow < 0 || ow >= p.out_w) continue;
        edge_terms[ne++] = {grow[r] + ow * C, wt + (kh[r] * p.kernel_w + ph.kw[t]) * C};
      }
    channel_blocks(row + (ph.first + p.stride_w * j) * C, zeros, C, edge_terms.data(), ne);
  }

  // Columns [j, j + pb) of phase i (inside its interior), pb <= 8, over the channels from `from`
  // (a multiple of the vector width): groups of kGroup vectors (4 columns at a time), single
  // vectors, then the narrower runs of the tail.
  void block(scalar_t* row, size_t i, int64_t j, int pb, int64_t from = 0) {
    constexpr int L = Simd<acc_t>::kLanes;
    constexpr int kGroup = sizeof(acc_t) * L >= 64 ? 4 : 2;  // 16 or 8 sums in registers
    const Phase& ph = phases[i];
    const int64_t C = p.channels, out_step = p.stride_w * C;
    const ChannelTerm<acc_t>* tm = terms.data() + first[i];
    const int64_t nt = first[i + 1] - first[i];
    const int64_t at = (j - ph.j_lo) * C;
    scalar_t* out = row + (ph.first + p.stride_w * j) * C;
    int64_t cb = from;
    for (; cb + kGroup * L <= C; cb += kGroup * L) {
      for (int q0 = 0; q0 < pb; q0 += 4) {
        with_pixels(std::min(pb - q0, 4), [&](auto Pc) {
          phase_pixels<decltype(Pc)::value, kGroup, L>(out + q0 * out_step + cb, out_step, tm, nt,
                                                        at + q0 * C, cb, C);
        });
      }
    }
    for (const Run& run : runs) {
      if (run.cb1 <= cb) continue;
      with_width<acc_t>(run.width, [&](auto Wc) {
        constexpr int W = decltype(Wc)::value;
        for (int64_t c = std::max(cb, run.cb0); c < run.cb1; c += W) {
          with_pixels(pb, [&](auto Pc) {
            phase_pixels<decltype(Pc)::value, 1, W>(out + c, out_step, tm, nt, at, c, C);
          });
        }
      });
    }
  }

  // Phase i's interior columns [j0, j1) in blocks.
  void blocks(scalar_t* row, size_t i, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1;) {
      const int pb = pixel_block(std::min(j1 - j, max_block));
      block(row, i, j, pb);
      j += pb;
    }
  }

  // Pairs [j0, j1) of the common interior of stride-2 rows (pair_block) in blocks of P pairs, all
  // channels (the last ones, fewer than a vector, by block); returns where the blocks stop.
  template <int K, int E>
  int64_t pairs(scalar_t* row, int64_t j0, int64_t j1) {
    constexpr int L = Simd<acc_t>::kLanes;
    constexpr int P = 4;
    constexpr int V = kVectorRegisters >= 32 ? 2 : 1;  // 16 sums and 6 weights with AVX-512
    const int64_t C = p.channels, n_rows = static_cast<int64_t>(grow.size());
    const int64_t base = (p.pad_w - E) / 2 + PairTaps<K, E>::lo;
    const int64_t vectors_end = C / L * L;
    int64_t j = j0;
    for (; j + P <= j1; j += P) {
      scalar_t* out = row + 2 * j * C;
      int64_t c = 0;
      for (; c + V * L <= vectors_end; c += V * L)
        pair_block<K, E, P, V>(out + c, grow.data(), wrow.data(), n_rows, j + base, c, C, stream);
      for (; c < vectors_end; c += L)
        pair_block<K, E, P, 1>(out + c, grow.data(), wrow.data(), n_rows, j + base, c, C, stream);
      if (vectors_end < C)
        for (size_t i = 0; i < phases.size(); ++i) block(row, i, j, P, vectors_end);
    }
    return j;
  }

  // Every phase pixel by pixel up to its interior, then the columns interior to all phases block
  // by block, each block for every phase in turn (so that the row is written in order), then the
  // rest of each phase.
  void compute(scalar_t* row) {
    const int64_t C = p.channels;
    if (grow.empty()) {
      std::fill(row, row + p.in_w * C, scalar_t(0));
      return;
    }
    constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
    int64_t lo = 0, hi = kNone;
    for (const Phase& ph : phases) {
      lo = std::max(lo, ph.j_lo);
      hi = std::min(hi, ph.j_hi);
    }
    if (lo >= hi) lo = hi = kNone;  // no common interior: each phase's alone
    for (size_t i = 0; i < phases.size(); ++i) {
      const Phase& ph = phases[i];
      for (int64_t j = 0; j < ph.j_lo; ++j) edge_pixel(row, ph, j);
      blocks(row, i, ph.j_lo, std::min(lo, ph.j_hi));
    }
    int64_t j = lo;
    if (lo < hi && use_pairs) {
      with_pair_shape(p, [&](auto shape) {
        [&]<int K, int E>(PairShape<K, E>) { j = pairs<K, E>(row, lo, hi); }(shape);
      });
    }
    while (j < hi) {
      const int pb = pixel_block(std::min(hi - j, max_block));
      for (size_t i = 0; i < phases.size(); ++i) block(row, i, j, pb);
      j += pb;
    }
    for (size_t i = 0; i < phases.size(); ++i) {
      const Phase& ph = phases[i];
      if (hi != kNone) blocks(row, i, hi, ph.j_hi);
      for (int64_t j = ph.j_hi; j < ph.columns; ++j) edge_pixel(row, ph, j);
    }
  }
};

}  // namespace

template <typename scalar_t>
void backward_input_nhwc_phases(const DepthwiseParams& p, const DwBackwardInputPlan& plan, const scalar_t* go,
                                const scalar_t* weight, scalar_t* gi) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t C = p.channels;
  const auto wt = transposed_weight<acc_t>(weight, C, p.kernel_h * p.kernel_w);
  const Buffer<acc_t> zeros(C, acc_t(0));
  const Buffer<Phase> phases = column_phases(p);
  const Buffer<Run> runs = channel_runs<acc_t>(C);
  // Non-temporal stores need 64-byte aligned pixels (the plan asks for whole vectors of channels
  // per pixel; gi, the op's own output, is aligned by the allocator, checked here all the same).
  const bool stream = plan.stream && reinterpret_cast<uintptr_t>(gi) % 64 == 0;
  at::parallel_for(0, p.batch * p.in_h, 1, [&](int64_t begin, int64_t end) {
    PhaseRow<scalar_t, acc_t> row(p, phases, wt.data(), runs, zeros.data(), plan, stream);
    for (int64_t task = begin; task < end; ++task) {
      row.load_rows(go, task / p.in_h, task % p.in_h);
      row.compute(gi + task * p.in_w * C);
    }
    if (stream) stream_fence();
  });
}

template void backward_input_nhwc_phases<float>(const DepthwiseParams&, const DwBackwardInputPlan&, const float*,
                                                 const float*, float*);
template void backward_input_nhwc_phases<double>(const DepthwiseParams&, const DwBackwardInputPlan&, const double*,
                                                 const double*, double*);
template void backward_input_nhwc_phases<c10::Half>(const DepthwiseParams&, const DwBackwardInputPlan&,
                                                    const c10::Half*, const c10::Half*, c10::Half*);
template void backward_input_nhwc_phases<c10::BFloat16>(const DepthwiseParams&, const DwBackwardInputPlan&,
                                                        const c10::BFloat16*, const c10::BFloat16*,
                                                        c10::BFloat16*);

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

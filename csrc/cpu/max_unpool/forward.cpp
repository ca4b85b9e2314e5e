// CPU max-unpool forward kernels: the gather form (one pass over the output, no separate zero-fill
// of the whole output) and the deterministic scatter form; see csrc/common/unpool_params.h.
// Indices are validated in the same pass: the entry point returns the first bad one's logical
// position, and the host raises after the pass, so the caller never sees the partly written output.
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>

#include "kernels.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

// Keeps the smallest logical input position with an invalid index (deterministic report).
inline void record_bad(std::atomic<int64_t>& bad, int64_t pos) {
  int64_t cur = bad.load(std::memory_order_relaxed);
  while (pos < cur && !bad.compare_exchange_weak(cur, pos, std::memory_order_relaxed)) {
  }
}

inline int64_t logical_pos(const UnpoolParams& p, int64_t n, int64_t c, int64_t h, int64_t w) {
  return ((n * p.channels + c) * p.in_h + h) * p.in_w + w;
}

// An index that is not where the gather form expects it (in its own region): out of range (an
// error) or valid elsewhere (the gather form does not apply).
inline void not_inside(const UnpoolParams& p, int64_t t, int64_t logical, std::atomic<int64_t>& bad,
                       std::atomic<bool>& fallback) {
  if (t < 0 || t >= p.out_h * p.out_w) {
    record_bad(bad, logical);
  } else {
    fallback.store(true, std::memory_order_relaxed);
  }
}

// Window rows per task: enough tasks (about 256 over `units` planes or images) for load balance.
inline int64_t window_rows_per_task(const UnpoolParams& p, int64_t units) {
  return std::max<int64_t>(1, p.in_h / std::max<int64_t>(1, ceil_div(256, std::max<int64_t>(units, 1))));
}

// Zeroes the output rows of the regions of window rows [h0, h1) (contiguous rows) in the plane `o`
// (row_len values a row) and returns in [*lo, *hi) the flat positions r * oW + q they hold, as
// indices count them.
template <typename scalar_t>
inline void zero_region_rows(const UnpoolParams& p, int64_t h0, int64_t h1, scalar_t* o,
                             int64_t row_len, int64_t* lo, int64_t* hi) {
  int64_t r_lo, r_hi, unused;
  unpool_region(h0, p.in_h, p.stride_h, p.pad_h, p.out_h, &r_lo, &unused);
  unpool_region(h1 - 1, p.in_h, p.stride_h, p.pad_h, p.out_h, &unused, &r_hi);
  std::memset(static_cast<void*>(o + r_lo * row_len), 0, sizeof(scalar_t) * (r_hi - r_lo) * row_len);
  *lo = r_lo * p.out_w;
  *hi = r_hi * p.out_w;
}

// NCHW: task (plane, block of window rows) owns the block's output rows (contiguous), which it
// zeroes and then writes each of its values at its index, in the plane's row-major order. That is
// the scatter result as long as every index lands in its own task's rows (true of max-pool's
// indices, which lie in their windows): values of one task that share an index resolve in order,
// and no other task writes those rows. An index elsewhere sends the whole op to the scatter form.
template <typename scalar_t, typename index_t>
void gather_nchw(const UnpoolParams& p, const scalar_t* in, const index_t* idx, scalar_t* out,
                 std::atomic<int64_t>& bad, std::atomic<bool>& fallback) {
  const int64_t plane_out = p.out_h * p.out_w, planes = p.batch * p.channels;
  const int64_t rows_per = window_rows_per_task(p, planes), blocks = ceil_div(p.in_h, rows_per);
  at::parallel_for(0, planes * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task / blocks;
      const int64_t h0 = (task % blocks) * rows_per, h1 = std::min(p.in_h, h0 + rows_per);
      scalar_t* o = out + plane * plane_out;
      int64_t lo, hi;
      zero_region_rows(p, h0, h1, o, p.out_w, &lo, &hi);
      const int64_t first = (plane * p.in_h + h0) * p.in_w, n = (h1 - h0) * p.in_w;
      const scalar_t* v = in + first;
      const index_t* id = idx + first;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t t = id[i];
        if ((t >= lo) & (t < hi)) {
          o[t] = v[i];
        } else {
          not_inside(p, t, first + i, bad, fallback);
        }
      }
    }
  });
}

// NHWC: the gather form proper. Task (n, block of window rows); each output element of a region is
// written once, in order: the window's value where the window's index equals the position, zero
// elsewhere (a compare and select over the channels, no zero-fill pass). Every index that lies in
// its own region matches exactly one position, so counting the matches checks them all at once;
// a shortfall (rare) is resolved element by element: out of range is an error, elsewhere in range
// sends the op to the scatter form.
template <typename scalar_t, typename index_t>
void gather_nhwc(const UnpoolParams& p, const scalar_t* in, const index_t* idx, scalar_t* out,
                 std::atomic<int64_t>& bad, std::atomic<bool>& fallback) {
  const int64_t C = p.channels;
  const int64_t rows_per = window_rows_per_task(p, p.batch), blocks = ceil_div(p.in_h, rows_per);
  at::parallel_for(0, p.batch * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / blocks;
      const int64_t h0 = (task % blocks) * rows_per, h1 = std::min(p.in_h, h0 + rows_per);
      scalar_t* o = out + n * p.out_h * p.out_w * C;
      int64_t matches = 0;
      for (int64_t h = h0; h < h1; ++h) {
        const int64_t first = (n * p.in_h + h) * p.in_w * C;
        const scalar_t* v = in + first;
        const index_t* id = idx + first;
        int64_t r_lo, r_hi;
        unpool_region(h, p.in_h, p.stride_h, p.pad_h, p.out_h, &r_lo, &r_hi);
        for (int64_t r = r_lo; r < r_hi; ++r) {
          for (int64_t w = 0; w < p.in_w; ++w) {
            int64_t q_lo, q_hi;
            unpool_region(w, p.in_w, p.stride_w, p.pad_w, p.out_w, &q_lo, &q_hi);
            const index_t* idw = id + w * C;
            const scalar_t* vw = v + w * C;
            for (int64_t q = q_lo; q < q_hi; ++q) {
              const int64_t pos = r * p.out_w + q;
              scalar_t* dst = o + pos * C;
              int64_t m = 0;
              for (int64_t c = 0; c < C; ++c) {
                const bool hit = idw[c] == pos;
                dst[c] = hit ? vw[c] : scalar_t(0);
                m += hit;
              }
              matches += m;
            }
          }
        }
      }
      if (matches == (h1 - h0) * p.in_w * C) continue;
      for (int64_t h = h0; h < h1; ++h) {  // find the indices outside their regions
        int64_t r_lo, r_hi;
        unpool_region(h, p.in_h, p.stride_h, p.pad_h, p.out_h, &r_lo, &r_hi);
        const index_t* id = idx + (n * p.in_h + h) * p.in_w * C;
        for (int64_t w = 0; w < p.in_w; ++w) {
          int64_t q_lo, q_hi;
          unpool_region(w, p.in_w, p.stride_w, p.pad_w, p.out_w, &q_lo, &q_hi);
          for (int64_t c = 0; c < C; ++c) {
            const int64_t t = id[w * C + c];
            const bool inside = t >= 0 && t / p.out_w >= r_lo && t / p.out_w < r_hi &&
                                t % p.out_w >= q_lo && t % p.out_w < q_hi;
            if (!inside) not_inside(p, t, logical_pos(p, n, c, h, w), bad, fallback);
          }
        }
      }
    }
  });
}

// Scatter form for NHWC with the zero-fill moved along with the scatter. Task (n, band of output
// rows) goes through the window rows whose windows reach its band, in order, and before window
// row h zeroes the band's rows up to the end of h's windows (rows not zeroed or written before:
// window ends only grow with h). Each output row is zeroed just before the values land in it,
// while it is in cache, instead of in a pass over the whole output first. A task writes only the
// values whose index falls in its band, in the plane's row-major order, so the latest wins, as in
// the plain scatter, as long as every index lies in its window's rows (true of max-pool's
// indices): then every window that can write to a band is one its task goes through. An index
// outside its window's rows sets `fallback` and the op redoes the plain scatter. Bands split an
// image when there are fewer images than threads.
template <typename scalar_t, typename index_t>
void scatter_nhwc_banded(const UnpoolParams& p, const scalar_t* in, const index_t* idx,
                         scalar_t* out, std::atomic<int64_t>& bad, std::atomic<bool>& fallback) {
  const int64_t C = p.channels, plane_out = p.out_h * p.out_w;
  const int64_t threads = at::get_num_threads();
  const int64_t bands =
      p.batch >= threads ? 1 : std::min<int64_t>(p.out_h, ceil_div(threads, p.batch));
  const int64_t band_rows = ceil_div(p.out_h, bands);
  // Output rows [first, end) of window row h's windows.
  auto window_rows = [&](int64_t h, int64_t* first, int64_t* end) {
    *first = std::clamp<int64_t>(h * p.stride_h - p.pad_h, 0, p.out_h);
    *end = std::clamp<int64_t>(h * p.stride_h - p.pad_h + p.kernel_h, 0, p.out_h);
  };
  at::parallel_for(0, p.batch * bands, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / bands;
      const int64_t b0 = std::min(p.out_h, (task % bands) * band_rows);
      const int64_t b1 = std::min(p.out_h, b0 + band_rows);
      if (b0 >= b1) continue;
      scalar_t* o = out + n * plane_out * C;
      auto zero_rows = [&](int64_t r0, int64_t r1) {
        if (r1 > r0)
          std::memset(static_cast<void*>(o + r0 * p.out_w * C), 0,
                      sizeof(scalar_t) * (r1 - r0) * p.out_w * C);
      };
      const int64_t band_lo = b0 * p.out_w, band_hi = b1 * p.out_w;
      int64_t zeroed = b0;  // band rows [b0, zeroed) are zeroed
      for (int64_t h = 0; h < p.in_h; ++h) {
        int64_t r_first, r_end;
        window_rows(h, &r_first, &r_end);
        // Windows wholly below the output (a smaller output_size) go to the last band, which
        // finds their indices out of range or elsewhere.
        const bool empty = r_end <= r_first;
        if (empty ? b1 < p.out_h : (r_end <= b0 || r_first >= b1)) continue;
        if (std::min(r_end, b1) > zeroed) {
          zero_rows(zeroed, std::min(r_end, b1));
          zeroed = std::min(r_end, b1);
        }
        const int64_t w_lo = r_first * p.out_w, w_hi = r_end * p.out_w;
        const int64_t first = (n * p.in_h + h) * p.in_w * C;
        for (int64_t w = 0; w < p.in_w; ++w) {
          const index_t* id = idx + first + w * C;
          const scalar_t* v = in + first + w * C;
          for (int64_t c = 0; c < C; ++c) {
            const int64_t t = id[c];
            if (t >= w_lo && t < w_hi) {
              if (t >= band_lo && t < band_hi) o[t * C + c] = v[c];
            } else if (t < 0 || t >= plane_out) {
              record_bad(bad, logical_pos(p, n, c, h, w));
            } else {
              fallback.store(true, std::memory_order_relaxed);
            }
          }
        }
      }
      zero_rows(zeroed, b1);
    }
  });
}

// Scatter form: zero, then values in each plane's row-major order, so the latest wins.
template <typename scalar_t, typename index_t>
void scatter(const UnpoolParams& p, const scalar_t* in, const index_t* idx, scalar_t* out,
             std::atomic<int64_t>& bad) {
  const int64_t plane_out = p.out_h * p.out_w, plane_in = p.in_h * p.in_w, C = p.channels;
  if (p.layout == Layout::kNCHW) {
    at::parallel_for(0, p.batch * C, 1, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        scalar_t* o = out + plane * plane_out;
        std::memset(static_cast<void*>(o), 0, sizeof(scalar_t) * plane_out);
        const scalar_t* v = in + plane * plane_in;
        const index_t* id = idx + plane * plane_in;
        for (int64_t i = 0; i < plane_in; ++i) {
          if (id[i] < 0 || id[i] >= plane_out) {
            record_bad(bad, plane * plane_in + i);
          } else {
            o[id[i]] = v[i];
          }
        }
      }
    });
    return;
  }
  at::parallel_for(0, p.batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      scalar_t* o = out + n * plane_out * C;
      std::memset(static_cast<void*>(o), 0, sizeof(scalar_t) * plane_out * C);
      const scalar_t* v = in + n * plane_in * C;
      const index_t* id = idx + n * plane_in * C;
      for (int64_t i = 0; i < plane_in; ++i)  // row-major over the plane, for every channel
        for (int64_t c = 0; c < C; ++c) {
          const int64_t t = id[i * C + c];
          if (t < 0 || t >= plane_out) {
            record_bad(bad, logical_pos(p, n, c, i / p.in_w, i % p.in_w));
          } else {
            o[t * C + c] = v[i * C + c];
          }
        }
    }
  });
}

}  // namespace

template <typename scalar_t, typename index_t>
int64_t max_unpool_forward(const UnpoolParams& p, const scalar_t* in, const index_t* id, scalar_t* out) {
  std::atomic<int64_t> bad{kUnpoolNoBadIndex};
  std::atomic<bool> fallback{false};
  if (p.gather) {
    (p.layout == Layout::kNHWC ? gather_nhwc<scalar_t, index_t> : gather_nchw<scalar_t, index_t>)(p, in, id, out,
                                                                                                  bad, fallback);
  } else if (p.layout == Layout::kNHWC) {
    scatter_nhwc_banded(p, in, id, out, bad, fallback);
  }
  const bool done = p.gather || p.layout == Layout::kNHWC;
  if (bad.load() == kUnpoolNoBadIndex && (!done || fallback.load())) scatter(p, in, id, out, bad);
  return bad.load();
}

#define INSTANTIATE(T)                                                                                \
  template int64_t max_unpool_forward<T, int64_t>(const UnpoolParams&, const T*, const int64_t*, T*); \
  template int64_t max_unpool_forward<T, int32_t>(const UnpoolParams&, const T*, const int32_t*, T*);
ATROUS_MAX_UNPOOL_INSTANTIATE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

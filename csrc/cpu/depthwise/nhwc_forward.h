// The channels_last forward, driven by its callers: forward_nhwc over the whole output, the fused
// channels_last backward over chunks of grad_input rows.
#pragma once

#include "../kernel_namespace.h"

#include "nhwc_blocks.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

// The channels_last forward: the set-up (weights blocked, bias, padded rows), then
// drive(rows), where rows(n, oh0, oh1) computes output rows [oh0, oh1) of image n (any rows, in any
// order or thread: each output pixel's sum is the same chain of products whichever block computes
// it). forward_nhwc drives it over the whole output; the fused backward over chunks of rows.
template <typename scalar_t, typename Drive>
void forward_nhwc_with(const DepthwiseParams& p, const scalar_t* in, const scalar_t* weight,
                       const scalar_t* bias, scalar_t* out, Drive&& drive) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t Co = p.out_channels, taps = p.kernel_h * p.kernel_w;
  Buffer<acc_t> b(Co, acc_t(0));
  if (bias)
    for (int64_t co = 0; co < Co; ++co) b[co] = static_cast<acc_t>(bias[co]);
  // The weights blocked per chunk: a chunk of W channels from cb holds [tap][W] from cb * taps.
  const Buffer<Run> runs = channel_runs<acc_t>(Co);
  Buffer<acc_t> wblocked(Co * taps);
  for (const Run& r : runs)
    for (int64_t cb = r.cb0; cb < r.cb1; cb += r.width)
      for (int64_t t = 0; t < taps; ++t)
        for (int64_t i = 0; i < r.width; ++i)
          wblocked[cb * taps + t * r.width + i] = static_cast<acc_t>(weight[(cb + i) * taps + t]);
  const bool unit_w = p.stride_w == 1 && p.dil_w == 1;
  // Wide kernels leave most columns at the border, where the taps vary by pixel: with unit stride
  // and dilation, rows copied with zero columns make every pixel an interior one.
  const bool padded = unit_w && p.kernel_w > 7;
  const int64_t pad_right =
      padded ? std::max<int64_t>(0, p.out_w + p.kernel_w - 1 - p.pad_w - p.in_w) : 0;
  // Output columns whose taps all lie inside the (padded) input: [ow_in_lo, ow_in_hi), within the
  // output (a row narrower than the kernel's left padding has no interior at all).
  const int64_t ow_in_lo = padded ? 0 : std::min<int64_t>(p.out_w, ceil_div(p.pad_w, p.stride_w));
  const int64_t ow_in_hi =
      padded ? p.out_w
             : std::max<int64_t>(ow_in_lo, std::min<int64_t>(
                                               p.out_w, floor_div(p.in_w - 1 - (p.kernel_w - 1) * p.dil_w +
                                                                      p.pad_w, p.stride_w) + 1));
  // The padded copy is made once for the whole input (a task's rows plus the kernel's height
  // would copy each input row many times over).
  const PixelRows<scalar_t, acc_t> padder(p, p.pad_w, pad_right);
  Buffer<acc_t> padded_in(padded ? p.batch * p.in_h * padder.width * Co : 0);
  if (padded) {
    at::parallel_for(0, p.batch * p.in_h, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        padder.copy_row(padded_in.data() + r * padder.width * Co, in + r * p.in_w * p.channels);
    });
  }
  // Pairs of output rows share all but one input row when stride and dilation along H are 1.
  // Measured here (2-core Xeon, float32): pairs are 8-12% faster for 5x5, 7x7 and 31x31, but 20%
  // slower for 3x3, whose single rows already keep the FMAs busy.
  const bool pairs = p.stride_h == 1 && p.dil_h == 1 && p.stride_w == 1 && p.kernel_w != 3;
  const int64_t kH = p.kernel_h;
  auto compute_rows = [&](int64_t n, int64_t oh0, int64_t oh1) {
    if (oh0 >= oh1) return;
    PixelRows<scalar_t, acc_t> rows(p);
    Buffer<const acc_t*> xrow(kH + 1);
    Buffer<int64_t> kh_of(kH);
    const int64_t ih_lo = std::max<int64_t>(0, oh0 * p.stride_h - p.pad_h);
    const int64_t ih_hi = std::min<int64_t>(
        p.in_h, (oh1 - 1) * p.stride_h - p.pad_h + (kH - 1) * p.dil_h + 1);
    if (!padded) rows.load(in + n * p.in_h * p.in_w * p.channels, ih_lo, std::max(ih_lo, ih_hi));
    auto row_ptr = [&](int64_t ih) {
      return padded ? padded_in.data() + ((n * p.in_h + ih) * padder.width + p.pad_w) * Co
                    : rows.pixel(ih, 0);
    };
    auto out_row = [&](int64_t oh) { return out + (n * p.out_h + oh) * p.out_w * Co; };
    // Output row oh's valid kernel rows into kh_of and xrow; returns their number.
    auto set_rows = [&](int64_t oh) {
      int64_t kh_lo, kh_hi;
      valid_taps(oh, p.stride_h, p.pad_h, p.dil_h, kH, p.in_h, &kh_lo, &kh_hi);
      for (int64_t r = 0; r < kh_hi - kh_lo; ++r) {
        kh_of[r] = kh_lo + r;
        xrow[r] = row_ptr(oh * p.stride_h - p.pad_h + (kh_lo + r) * p.dil_h);
      }
      return kh_hi - kh_lo;
    };
    // Pixels [a, e) of output row oh, whose rows set_rows has set.
    auto row_pixels = [&](int64_t oh, int64_t n_rows, int64_t a, int64_t e) {
      scalar_t* orow = out_row(oh);
      for (int64_t ow = a; ow < e;) {
        if (ow >= ow_in_lo && ow < ow_in_hi) {
          // Interior pixels in blocks of 8, then 4, 2, 1. With unit stride, blocks of 8 or 4
          // pixels dil_w apart slide along the taps: dil_w such blocks cover 8 or 4 * dil_w
          // consecutive pixels.
          int64_t left = std::min(e, ow_in_hi) - ow;
          const int64_t d = p.dil_w;
          // The last interior pixels of a row, too few for a sliding block of 8: the block of 8
          // that ends with them instead, recomputing some pixels before it (to the same values),
          // rather than narrower blocks, which make fewer products per load. (Not into pixels
          // before `a`: after the row pairs, measured slower for 7x7 and 31x31.)
          if (p.stride_w == 1 && left < 8 * d && e >= ow_in_hi &&
              ow_in_hi - 8 * d >= std::max(a, ow_in_lo)) {
            ow = ow_in_hi - 8 * d;
            left = 8 * d;
          }
          if (p.stride_w == 1 && d > 1 && left < 4 * d && left >= 2 * d) {
            // A dilated kernel's interior too narrow for blocks of 4 pixels in each of the d
            // column classes (pixels d apart): each class slides on its own, in blocks of 4, 3,
            // 2 or 1 pixels (ASPP d6 at 33 wide: 21 interior pixels, classes of 3 and 4).
            const int64_t stop = ow + left;
            for (int64_t r = 0; r < d; ++r) {
              for (int64_t q = ow + r; q < stop;) {
                const int64_t m = ceil_div(stop - q, d);  // pixels left in the class
                const int pb = static_cast<int>(std::min<int64_t>(m, 4));
                with_pixels(pb, [&](auto PB) {
                  for (const Run& rn : runs) {
                    with_width<acc_t>(rn.width, [&](auto WC) {
                      with_kernel_width(p.kernel_w, [&](auto KC) {
                        chunk_pixels_s1<decltype(PB)::value, decltype(WC)::value, decltype(KC)::value>(
                            orow + q * Co, b.data(), wblocked.data(), xrow.data(), rn, kh_of.data(),
                            n_rows, q - p.pad_w, p);
                      });
                    });
                  }
                });
                q += pb * d;
              }
            }
            ow = stop;
            continue;
          }
          const bool slide = p.stride_w == 1 && left >= 4 * d;
          const int pb = slide ? (left >= 8 * d ? 8 : 4) : pixel_block(left);
          const int64_t col = ow * p.stride_w - p.pad_w;
          with_pixels(pb, [&](auto PB) {
            constexpr int PN = decltype(PB)::value;
            for (const Run& rn : runs) {
              with_width<acc_t>(rn.width, [&](auto WC) {
                constexpr int WN = decltype(WC)::value;
                if constexpr (PN >= 4) {
                  if (slide) {
                    with_kernel_width(p.kernel_w, [&](auto KC) {
                      for (int64_t r = 0; r < d; ++r)
                        chunk_pixels_s1<PN, WN, decltype(KC)::value>(
                            orow + (ow + r) * Co, b.data(), wblocked.data(), xrow.data(), rn,
                            kh_of.data(), n_rows, col + r, p);
                    });
                    return;
                  }
                }
                chunk_pixels<PN, WN>(orow + ow * Co, b.data(), wblocked.data(), xrow.data(), rn,
                                     kh_of.data(), n_rows, col, p, 0, p.kernel_w);
              });
            }
          });
          ow += slide ? pb * d : pb;
          continue;
        }
        // Border pixels: their valid taps only, in blocks of up to 8 consecutive pixels whose
        // valid taps are the same (a dilated kernel's border is many pixels wide).
        int64_t kw_lo, kw_hi;
        valid_taps(ow, p.stride_w, p.pad_w, p.dil_w, p.kernel_w, p.in_w, &kw_lo, &kw_hi);
        int64_t same = 1;
        for (; same < 8 && ow + same < e; ++same) {
          const int64_t q = ow + same;
          if (q >= ow_in_lo && q < ow_in_hi) break;
          int64_t lo, hi;
          valid_taps(q, p.stride_w, p.pad_w, p.dil_w, p.kernel_w, p.in_w, &lo, &hi);
          if (lo != kw_lo || hi != kw_hi) break;
        }
        const int pb = pixel_block(same);
        with_pixels(pb, [&](auto PB) {
          for (const Run& rn : runs) {
            with_width<acc_t>(rn.width, [&](auto WC) {
              chunk_pixels<decltype(PB)::value, decltype(WC)::value>(
                  orow + ow * Co, b.data(), wblocked.data(), xrow.data(), rn, kh_of.data(),
                  n_rows, ow * p.stride_w - p.pad_w, p, kw_lo, kw_hi);
            });
          }
        });
        ow += pb;
      }
    };
    // Whether output row oh reads all kH kernel rows (unit stride and dilation along H).
    auto full = [&](int64_t oh) { return oh >= p.pad_h && oh - p.pad_h + kH <= p.in_h; };
    for (int64_t oh = oh0; oh < oh1;) {
      if (pairs && oh + 1 < oh1 && full(oh) && full(oh + 1)) {
        for (int64_t r = 0; r <= kH; ++r) xrow[r] = row_ptr(oh - p.pad_h + r);
        // The sliding blocks of the interior pixels for both rows at once.
        const int64_t d = p.dil_w;
        int64_t ow = ow_in_lo;
        while (ow_in_hi - ow >= 4 * d) {
          const int pb = ow_in_hi - ow >= 8 * d ? 8 : 4;
          with_pixels(pb, [&](auto PB) {
            constexpr int PN = decltype(PB)::value;
            if constexpr (PN >= 4) {  // pb is 8 or 4 here
              for (const Run& rn : runs) {
                with_width<acc_t>(rn.width, [&](auto WC) {
                  with_kernel_width(p.kernel_w, [&](auto KC) {
                    for (int64_t r = 0; r < d; ++r)
                      chunk_pixels_s1_pair<PN, decltype(WC)::value, decltype(KC)::value>(
                          out_row(oh) + (ow + r) * Co, out_row(oh + 1) + (ow + r) * Co,
                          b.data(), wblocked.data(), xrow.data(), rn, ow + r - p.pad_w, p);
                  });
                });
              }
            }
          });
          ow += pb * d;
        }
        // The other pixels row by row.
        for (int64_t o = oh; o < oh + 2; ++o) {
          const int64_t n_rows = set_rows(o);
          row_pixels(o, n_rows, 0, ow_in_lo);
          row_pixels(o, n_rows, ow, p.out_w);
        }
        oh += 2;
        continue;
      }
      row_pixels(oh, set_rows(oh), 0, p.out_w);
      ++oh;
    }
  };
  drive(compute_rows);
}

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

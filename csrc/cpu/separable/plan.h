// How the CPU runs a fused depthwise-separable convolution, decided here and nowhere else: the
// output is cut into tiles of whole output rows of one image (bands); a tile's depthwise result
// (C*m channels by the tile's pixels) lives in a per-thread buffer the size of the cache, where the
// pointwise product consumes it. The backward recomputes each tile's depthwise result from the
// input. `torch.ops.atrous._separable_conv2d_cpu_plan` reports the plan, so tests see which ran.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../../common/depthwise_params.h"

namespace atrous {
namespace cpu {

struct SeparablePlan {
  int64_t rows_per_band = 1;  // output rows of a tile (the last band may have fewer)
  int64_t bands = 1;          // tiles per image
  int64_t tasks = 0;          // batch * bands
  // Backward: the weight gradients are summed over the tiles of each chunk of consecutive tasks,
  // then chunk by chunk in order; the count follows from the shape only, so the sums do not
  // depend on the number of threads.
  int64_t chunks = 1;
  int64_t max_tile_pixels = 0;  // rows_per_band * out_w
  int64_t max_band_rows = 0;    // input rows a band reads, at most
};

// One tile: output rows [oh0, oh1) of image n, reading input rows [in0, in1) (clamped to the
// input; empty when the rows read only padding), and the depthwise convolution of those input rows
// into those output rows, as a problem of its own (batch 1, begin padding what is left of the top
// padding) that the depthwise kernels and plans take as they are.
struct Band {
  int64_t n = 0, oh0 = 0, oh1 = 0, in0 = 0, in1 = 0;
  DepthwiseParams q;
  bool reads_input() const { return in1 > in0; }
  int64_t pixels() const { return (oh1 - oh0) * q.out_w; }
};

// element_size: of the tensors' scalar type. out_channels: of the pointwise product.
SeparablePlan plan_separable(const DepthwiseParams& p, int64_t out_channels, int64_t element_size);
Band band_of(const DepthwiseParams& p, const SeparablePlan& plan, int64_t task);

// The input rows of an image that more than one band reads, or none does (their grad_input is
// summed, or zeroed, after the tiles), and for each band the rows only it reads, [excl0, excl1).
struct BandOverlaps {
  std::vector<int64_t> excl0, excl1;     // per band
  std::vector<int64_t> shared_offset;    // per band: its first shared row among the image's shared rows
  int64_t shared_per_image = 0;          // shared rows stored per image, all bands
  std::vector<int64_t> rows_to_finish;   // rows of an image that no single band owns
};
BandOverlaps band_overlaps(const DepthwiseParams& p, const SeparablePlan& plan);
// The index of input row r among band b's shared rows (r outside [excl0, excl1) of b).
int64_t shared_row_index(const Band& b, const BandOverlaps& o, int64_t band, int64_t r);

// "bands=<B> rows=<R> chunks=<K> depthwise(<plan of the largest interior tile>)".
std::string separable_plan_name(const DepthwiseParams& p, int64_t out_channels, int64_t element_size);

}  // namespace cpu
}  // namespace atrous

// How the CPU runs a fused depthwise-separable convolution, decided here and nowhere else: the
// output is cut into tiles, each either a band of whole output rows of one image or a group of
// whole images; a tile's depthwise result (C*m channels by the tile's pixels) lives in a buffer
// about the size of the cache, where the pointwise product consumes it. The tiles run in one of
// two orders (TileOrder). The backward recomputes each tile's depthwise result from the input.
// `torch.ops.atrous._separable_conv2d_cpu_plan` reports the plan, so tests see which ran.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../../common/depthwise_params.h"
#include "../depthwise/plan.h"

namespace atrous {
namespace cpu {

enum class TileOrder {
  // Each tile by one thread, start to end, in a buffer of that thread's: where the problem gives
  // every thread tiles of its own that are large enough for a proper GEMM.
  kPerThread,
  // The tiles one after another, each step (depthwise kernels, pointwise products) using every
  // thread: where it does not (small maps, few images), so that no thread idles and no product is
  // a sliver. Tiles are sized for all the threads' caches together.
  kSerial,
};

// What computes a tile's pointwise products (the output, and the intermediate's gradient).
enum class PointwiseEngine {
  kOneDnn,  // oneDNN's 1x1 convolution on the tile, and its backward-data for the intermediate's
            // gradient (float32, oneDNN enabled: AVX-512 kernels, or NCHW planes of few pixels)
  kGemm,    // torch's CPU GEMM (at::mm): every other case
};

// How the backward computes the intermediate's gradient, W^T times grad_output's tile.
enum class MidGrad {
  kGemm,          // the engine is kGemm: at::mm
  kBackwardData,  // torch's convolution_backward for the 1x1 convolution (oneDNN's backward-data
                  // where torch runs oneDNN: more than one thread)
  kTransposed,    // oneDNN's 1x1 convolution with a transposed copy of the weight
};

struct SeparablePlan {
  TileOrder order = TileOrder::kPerThread;
  PointwiseEngine pointwise = PointwiseEngine::kGemm;
  MidGrad mid_grad = MidGrad::kGemm;
  int64_t images = 1;         // whole images per tile (more than one only when bands == 1)
  int64_t rows_per_band = 1;  // output rows of a tile (the last band may have fewer)
  int64_t bands = 1;          // tiles per image
  int64_t tasks = 0;          // ceil(batch / images) * bands
  // Backward, kPerThread: the weight gradients are summed over the tiles of each chunk of
  // consecutive tasks, then chunk by chunk in order; the count follows from the shape only, so
  // the sums do not depend on the number of threads. kSerial: one chunk, summed in tile order.
  int64_t chunks = 1;
  int64_t max_tile_pixels = 0;  // images * rows_per_band * out_w
  int64_t max_band_rows = 0;    // input rows a band reads, at most
  // Whether the whole problem's channels_last row passes prefetch (forward, grad_input by the
  // flipped forward, weight gradient): the tiles' do wherever it would (tile_*_plan).
  bool prefetch_forward = false, prefetch_input = false, prefetch_weight = false;
};

// One tile: output rows [oh0, oh1) of images [n, n + images), reading input rows [in0, in1)
// (clamped to the input; empty when the rows read only padding), and the depthwise convolution of
// those input rows into those output rows, as a problem of its own (batch `images`, begin padding
// what is left of the top padding) that the depthwise kernels and plans take as they are.
struct Band {
  int64_t n = 0, images = 1, oh0 = 0, oh1 = 0, in0 = 0, in1 = 0;
  DepthwiseParams q;
  bool reads_input() const { return in1 > in0; }
  int64_t pixels() const { return images * (oh1 - oh0) * q.out_w; }
};

// element_size: of the tensors' scalar type. out_channels: of the pointwise product. threads:
// those the op may use (at::get_num_threads()).
SeparablePlan plan_separable(const DepthwiseParams& p, int64_t out_channels, int64_t element_size,
                             int64_t threads);

// The depthwise kernels' plans for a tile's sub-problem q (element_size: what the kernels compute
// in): the depthwise planner's, except that the channels_last row passes prefetch wherever the
// whole problem's would. The planner decides from the bytes of the problem it is given, and a
// tile's are few, but each tile reads its part of the input from memory just the same when the
// whole input does not stay in the cache ((4, 64, 112, 112) -> 128 3x3 s2 channels_last, one
// thread: forward 3.85 -> 3.1-3.4 ms).
DwForwardPlan tile_forward_plan(const SeparablePlan& plan, const DepthwiseParams& q, int64_t element_size);
DwBackwardInputPlan tile_backward_input_plan(const SeparablePlan& plan, const DepthwiseParams& q,
                                             int64_t element_size);
DwBackwardWeightPlan tile_backward_weight_plan(const SeparablePlan& plan, const DepthwiseParams& q,
                                               int64_t element_size);
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

// "<order> pointwise=<engine> gmid=<mid_grad> images=<I> bands=<B> rows=<R> chunks=<K>
// depthwise(<plan of the largest interior tile>)", order "per-thread" or "serial", engine "onednn"
// or "gemm", mid_grad "gemm", "backward-data" or "transposed"; the tile plan with the prefetches
// of tile_*_plan.
std::string separable_plan_name(const SeparablePlan& plan, const DepthwiseParams& p, int64_t element_size);

}  // namespace cpu
}  // namespace atrous

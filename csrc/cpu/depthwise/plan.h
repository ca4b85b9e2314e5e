// Which CPU kernel serves a depthwise convolution, decided here and nowhere else, for each
// direction, with the blocking of the kernels that need one. The plan's name is what
// `torch.ops.atrous._depthwise_conv2d_cpu_plan` reports, so tests can check each path ran.
#pragma once

#include <cstdint>
#include <string>

#include "../../common/depthwise_params.h"

namespace atrous {
namespace cpu {

enum class DwForward {
  kNchwChannelTiles,  // NCHW small planes: L channels in the lanes (nchw_channel_tiles.cpp)
  kNchwSweep,         // NCHW square 3/5/7 kernels, stride 1 or 2: column vectors swept down
  kNchwFlat,          // NCHW unit stride: the padded plane as one long row
  kNchwRows,          // NCHW any geometry: prepared rows, vectors along output rows
  kNhwcRows,          // channels_last, m = 1, "same" 3/5/7 kernels: row passes on the tensor
  kNhwc,              // channels_last: vectors across channels
};

enum class DwBackwardInput {
  kFlippedForward,    // unit stride, m = 1: the forward (its own plan) with the flipped kernel
  kNchwChannelTiles,  // NCHW small planes, m = 1: L channels in the lanes, listed taps
  kNchwRows,          // NCHW: prepared grad_output rows, vectors along input rows
  kNhwc,              // channels_last, m > 1: vectors across channels, pixel by pixel
  kNhwcPhases,        // channels_last, m = 1: phases of the input columns, blocks of pixels
};

enum class DwBackwardWeight {
  kNchwChannelTiles,  // NCHW small planes: per-task sums in lanes of channels, reduced in order
  kNchwRows,          // NCHW: vectors along rows, per-plane sums reduced in order
  kNhwcRows,          // channels_last, m = 1, "same" 3/5/7 kernels: row passes, per-task sums
  kNhwc,              // channels_last: vectors across channels, row chunks reduced in order
};

// Blocks of L channels (L: lanes of the accumulation type) by bands of rows.
struct ChannelTilePlan {
  int64_t blocks = 0;         // ceil(out_channels / L)
  int64_t bands = 1;          // bands of rows per image and block
  int64_t rows_per_band = 0;  // output rows (forward, weight) or input rows (grad_input)
  int64_t tile_rows = 0;      // rows a band's tile holds
  int64_t tile_cols = 0;      // columns of the padded input tile
  // Whole rows in passes with compile-time columns (row_passes.h), for the kernel widths,
  // strides and output widths instantiated there with "same" padding.
  bool rows = false;
};

struct DwForwardPlan {
  DwForward path = DwForward::kNchwRows;
  ChannelTilePlan tiles;
  // kNhwcRows: the tensors stream from beyond the cache, and each pass prefetches what the next
  // row of outputs reads and writes (in cache, the prefetches only cost). kNchwSweep (stride 2):
  // each input row copied into the sweep's buffer first prefetches the row 8 rows on.
  bool prefetch = false;
  // kNhwcRows: channel blocks a row's passes go over column by column (1: block by block).
  int64_t column_blocks = 1;
};

struct DwBackwardInputPlan {
  DwBackwardInput path = DwBackwardInput::kNchwRows;
  DepthwiseParams flipped;  // kFlippedForward: the forward's params ...
  DwForwardPlan forward;    // ... and its plan
  ChannelTilePlan tiles;
  // kNhwcPhases: columns of a phase computed together (8; 1 where grad_input streams from beyond
  // the cache, so that it is written in order).
  int64_t column_block = 8;
  // kNhwcPhases at stride 2 along W without dilation, kernel width 3: the columns inside both
  // phases in pairs of pixels, both phases at once (nhwc_phases.cpp's pair_block).
  bool pairs = false;
  // pairs, of a grad_input from the stream threshold on (plan.cpp's streams(); float or double,
  // whole 64-byte vectors of channels per pixel): stored with non-temporal stores (Simd::stream).
  bool stream = false;
};

struct DwBackwardWeightPlan {
  DwBackwardWeight path = DwBackwardWeight::kNchwRows;
  ChannelTilePlan tiles;
  // channels_last with grad_input by the flipped forward: both in one pass over grad_output when
  // both are asked for.
  bool fuse_with_input = false;
  bool prefetch = false;  // kNhwcRows: as the forward's
  // kNhwcRows: channel blocks per task, each task summing every image and row of its blocks;
  // 0: tasks of bands of rows over every block, their sums added after.
  int64_t block_group = 0;
};

// element_size: of the tensors' scalar type (8 for double; the others compute in float).
DwForwardPlan plan_forward(const DepthwiseParams& p, int64_t element_size);
DwBackwardInputPlan plan_backward_input(const DepthwiseParams& p, int64_t element_size);
DwBackwardWeightPlan plan_backward_weight(const DepthwiseParams& p, int64_t element_size);

// "forward=<path> backward_input=<path> backward_weight=<path>" (a flipped forward's path in
// parentheses; "+input" where the weight gradient runs with grad_input; "+sequential" where
// grad_input by phases goes one column at a time, "+pairs" where it goes in pairs of pixels and
// "+stream" where those bypass the caches; "+columns<g>" where the channels_last forward's
// passes sweep g channel blocks column by column; "+prefetch" where the row passes prefetch).
std::string plan_name(const DepthwiseParams& p, int64_t element_size);
// The same for given plans (the fused separable op's tiles adjust theirs).
std::string plan_name(const DwForwardPlan& f, const DwBackwardInputPlan& bi, const DwBackwardWeightPlan& bw);

}  // namespace cpu
}  // namespace atrous

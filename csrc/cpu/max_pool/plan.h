// Which CPU kernel serves a max-pool, decided here and nowhere else, for each direction. The plan's
// name is what `torch.ops.atrous._max_pool2d_cpu_plan` reports, so tests can check each path ran.
#pragma once

#include <cstdint>

#include "../../common/pool_params.h"

namespace atrous {
namespace cpu {

enum class PoolForward {
  kNchwRows,      // NCHW: vectors along output rows (interior columns), scalar borders
  kNhwcChannels,  // channels_last: vectors across channels, bounds resolved per pixel, up to
                  // register_blocks() vectors of them kept in registers across the window
  kNhwcTaps,      // channels_last, pixels of more channels than that: tap by tap, each tap's
                  // channels in one pass against the maxima kept in the output
  kGeneric,       // scalar, either layout: NCHW rows of under 4 outputs, or planes of 2^31+
};

enum class PoolBackward {
  kNchwRowScatter,    // NCHW: each input row sums the gradients of the windows covering it
  kNchwPhaseScatter,  // NCHW: the same in vectors of output columns, by column phase
  kNchwGather2x2,   // NCHW, 2x2 windows at stride 2 (no padding or dilation): a gather in vectors
  kNchwWindowGather,  // NCHW, other windows strided by 2 or more along W (no dilation there):
                      // each lane gathers from its column's windows, permuted from one load
  kNhwcWindows,     // channels_last, windows that do not overlap, a vector of channels or more:
                    // each window's gradients and indices read once, a vector of channels at a
                    // time, and written to its taps (backward_windows.cpp)
  kScatter,         // either layout: each task zeroes its planes (NCHW) or its chunk of an image's
                    // channels (channels_last) and adds each gradient where its index points, in
                    // output order, as torch's backward does (backward_scatter.cpp): small NCHW
                    // planes, the other channels_last pools, and windows without taps (whose index
                    // may name an element no window covers, where no gather would look)
};

struct PoolPlan {
  PoolForward forward;
  PoolBackward backward;
  int64_t forward_grain;   // units of the forward (output rows, or channels_last pixels) per grain
  int64_t backward_grain;  // input rows (of the backward's parallel unit) per parallel_for grain;
                           // kScatter: planes (NCHW) or bands of an image's rows (channels_last);
                           // kNhwcWindows: channel chunks of an output row of windows
  int64_t scatter_bands = 1;     // kScatter, channels_last: the bands of rows each image is split in
  int64_t window_channels = 0;   // kNhwcWindows: the channels of a chunk
};

PoolPlan plan_max_pool(const PoolParams& p, int64_t element_size);

const char* forward_name(PoolForward f);
const char* backward_name(PoolBackward b);

}  // namespace cpu
}  // namespace atrous

// Every path choice and threshold of the CPU max-pool kernels.
#include "plan.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "../capability.h"
#include "../../common/macros.h"  // ATROUS_HAVE_SHUFFLEVECTOR

namespace atrous {
namespace cpu {

namespace {
// The vector kernels keep in-plane positions in lanes as wide as the values' (int32 for float and
// the half types): planes of 2^31 elements or more take the scalar path.
constexpr int64_t kMaxPlaneForLanes = int64_t(1) << 31;
// NCHW output rows narrower than this leave most lanes of a vector block idle: scalar instead.
constexpr int64_t kMinVectorRow = 4;
// Channels_last pixels of up to this many vectors of channels are read in one pass over their
// window, every vector's maximum and index in registers (a quarter of them: with the input vector,
// its position and the mask, GCC keeps them there; forward_nhwc.cpp's kMaxBlocks). Wider pixels
// read in pieces, a few vectors of every tap at a time, measured up to twice as slow as a pass over
// each tap's channels in order (256 and 512 channels, Zen 4): those go tap by tap.
int64_t register_blocks() { return active_vector_registers() / 4; }
// About this many elements per parallel_for grain: small enough that batch 1 spreads over every
// thread, large enough that a task's set-up is noise.
constexpr int64_t kGrainElements = 4096;

// Whether some window has no tap inside the input along an axis (dilated windows over the padding).
bool has_empty_window(int64_t out, int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  for (int64_t o = 0; o < out; ++o) {
    int64_t lo = 0, hi = 0;
    pool_taps(o * stride - pad, kernel, dilation, in, &lo, &hi);
    if (lo == hi) return true;
  }
  return false;
}

// NCHW: the backward's scatter (backward_scatter.cpp) against the gathers (backward.cpp). Measured
// on a 2-vCPU Zen 4, float32, one thread, gather -> scatter (torch's own scatter in brackets):
// planes of up to kScatterPlane elements, which stay in L1 while they are summed: VGG (8, 256, 56,
// 56) 2x2 3.29 -> 1.83 ms (2.99); SegNet (8, 512, 45, 60) 5.38 -> 3.28 (5.99), (1, 512, 23, 30)
// 0.296 -> 0.077 (0.075). Planes of up to kScatterPlaneInCache elements when the whole input has at
// most kScatterInput: ResNet stem (1, 64, 112, 112) 3x3/2 0.400 -> 0.187 (0.174); SegNet (1, 256,
// 90, 120) 1.26 -> 0.91 (1.87). Larger inputs of such planes stream from memory, where the gathers'
// single pass wins: (8, 256, 90, 120) 8.6 -> 10.8 (17.0), (8, 64, 128, 128) 2.8 -> 4.2 (6.6); and
// larger planes: (1, 64, 224, 224) 0.83 -> 1.53 (1.80), (1, 64, 360, 480) 3.0 -> 5.0 (8.9).
constexpr int64_t kScatterPlane = 4096;
constexpr int64_t kScatterPlaneInCache = 16384;
constexpr int64_t kScatterInput = int64_t(1) << 22;
bool nchw_scatter_wins(const PoolParams& p) {
  const int64_t plane = p.in_h * p.in_w;
  return plane <= kScatterPlane || (plane <= kScatterPlaneInCache && p.batch * p.channels * plane <= kScatterInput);
}

// Channels_last: windows that do not overlap write each element once from their own gradient and
// index (backward_windows.cpp), from a vector of channels; the rest scatter. Measured on a 2-vCPU
// Zen 4, float32, 2x2 windows, the backward op, scatter or the former per-pixel gather -> windows
// (torch), 1 thread: SegNet (1, 512, 23, 30) 0.090 -> 0.072 ms (0.089), (1, 256, 45, 60) 0.200 ->
// 0.135 (0.176), (8, 512, 23, 30) 1.36 -> 0.87 (1.44), VGG (8, 256, 56, 56) 2.66 -> 2.47 (4.11), (1,
// 64, 360, 480) 4.38 -> 3.05 (4.97); 2 threads: 0.148 -> 0.049 (0.086), 0.125 -> 0.078 (0.171),
// 0.675 -> 0.481 (0.691), 1.46 -> 1.31 (2.38), 2.59 -> 2.01 (4.71). Channels within one vector:
// ENet (1, 16, 256, 256) 0.268 -> 0.269 (0.263) at 1 thread, 0.36 -> 0.15 (0.36) at 2; fewer
// channels than a vector's lanes scatter, faster there: (1, 8, 64, 64) 0.019 against 0.026 (0.012).
bool nhwc_windows(const PoolParams& p, int64_t lanes, bool empty_window) {
  const bool disjoint =
      p.stride_h >= (p.kernel_h - 1) * p.dil_h + 1 && p.stride_w >= (p.kernel_w - 1) * p.dil_w + 1;
  return disjoint && !empty_window && p.channels >= lanes;
}
}  // namespace

PoolPlan plan_max_pool(const PoolParams& p, int64_t element_size) {
  PoolPlan plan{};
  const int64_t lanes = active_vector_lanes(element_size);
  const bool small_plane = p.in_h * p.in_w < kMaxPlaneForLanes;
  if (p.layout == Layout::kNHWC) {
    plan.forward = !small_plane                              ? PoolForward::kGeneric
                   : p.channels <= register_blocks() * lanes ? PoolForward::kNhwcChannels
                                                             : PoolForward::kNhwcTaps;
    plan.backward = PoolBackward::kScatter;  // or kNhwcWindows (below)
  } else {
    plan.forward = small_plane && p.out_w >= kMinVectorRow ? PoolForward::kNchwRows : PoolForward::kGeneric;
    const bool two_by_two = p.kernel_w == 2 && p.stride_w == 2 && p.pad_w == 0 && p.dil_w == 1 &&
                            p.kernel_h == 2 && p.stride_h == 2 && p.pad_h == 0 && p.dil_h == 1;
#ifdef ATROUS_HAVE_SHUFFLEVECTOR
    const bool vector_2x2 = two_by_two && p.in_w >= lanes;
#else
    const bool vector_2x2 = false;
#endif
    // Vectors of output columns pay off from a vector's worth of them, up to a kernel span a few
    // strides wide (each tap is one masked add per block).
    const bool phases = small_plane && p.out_w >= lanes &&
                        (p.kernel_w - 1) * p.dil_w + 1 <= 4 * p.stride_w;
    // The windows of a vector's worth of input columns, all among a vector's worth of outputs
    // from the first: (lanes - 1 + kernel - 1) / stride + 1 of them at most.
    const bool window_gather =
        small_plane && p.stride_w >= 2 && p.dil_w == 1 && (lanes + p.kernel_w - 2) / p.stride_w + 1 <= lanes;
    plan.backward = vector_2x2      ? PoolBackward::kNchwGather2x2
                    : window_gather ? PoolBackward::kNchwWindowGather
                    : phases        ? PoolBackward::kNchwPhaseScatter
                                    : PoolBackward::kNchwRowScatter;
  }
  // The forward's unit is an output row of one plane, or an output pixel of all channels for the
  // channels_last vector paths; the NCHW gathers' an input row of one plane (the channels_last and
  // scatter paths set their own below).
  const bool all_channels = plan.forward == PoolForward::kNhwcChannels || plan.forward == PoolForward::kNhwcTaps;
  const int64_t forward_unit = std::max<int64_t>(1, all_channels ? p.channels : p.out_w);
  plan.forward_grain = std::max<int64_t>(1, kGrainElements / forward_unit);
  plan.backward_grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, p.in_w));
  // Windows without a tap inside the input hold torch's index of a tap outside the plane's row,
  // which may name an element no window covers, where no gather would look: the scatter follows it.
  const bool empty_window = has_empty_window(p.out_h, p.in_h, p.kernel_h, p.stride_h, p.pad_h, p.dil_h) ||
                            has_empty_window(p.out_w, p.in_w, p.kernel_w, p.stride_w, p.pad_w, p.dil_w);
  if (p.layout == Layout::kNHWC && nhwc_windows(p, lanes, empty_window)) {
    plan.backward = PoolBackward::kNhwcWindows;
    // An output row of windows is the unit, its channels in as many chunks as it takes to give
    // every thread a task.
    const int64_t blocks = ceil_div(p.channels, lanes);
    const int64_t rows = std::max<int64_t>(1, p.batch * p.out_h);
    const int64_t chunks = std::clamp<int64_t>(ceil_div(at::get_num_threads(), rows), 1, blocks);
    plan.window_channels = ceil_div(blocks, chunks) * lanes;
    const int64_t cell = p.stride_h * p.in_w * plan.window_channels;
    plan.backward_grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, cell));
  } else if (empty_window || p.layout == Layout::kNHWC || nchw_scatter_wins(p)) {
    plan.backward = PoolBackward::kScatter;
    // Channels_last: each image in as many bands of rows as it takes to give every thread a task,
    // but whole where a window has no tap (its index may name a row no band of its window reads).
    // The sums do not depend on the split: each element's gradients still add in output order.
    if (p.layout == Layout::kNHWC && !empty_window)
      plan.scatter_bands = std::clamp<int64_t>(ceil_div(at::get_num_threads(), std::max<int64_t>(1, p.batch)), 1,
                                               p.in_h);
    const int64_t part = p.layout == Layout::kNHWC ? ceil_div(p.in_h, plan.scatter_bands) * p.in_w * p.channels
                                                   : p.in_h * p.in_w;
    plan.backward_grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, part));
  }
  return plan;
}

const char* forward_name(PoolForward f) {
  switch (f) {
    case PoolForward::kNchwRows: return "nchw_rows";
    case PoolForward::kNhwcChannels: return "nhwc_channels";
    case PoolForward::kNhwcTaps: return "nhwc_taps";
    case PoolForward::kGeneric: return "generic";
  }
  return "?";
}

const char* backward_name(PoolBackward b) {
  switch (b) {
    case PoolBackward::kNchwRowScatter: return "nchw_row_scatter";
    case PoolBackward::kNchwPhaseScatter: return "nchw_phase_scatter";
    case PoolBackward::kNchwGather2x2: return "nchw_gather_2x2";
    case PoolBackward::kNchwWindowGather: return "nchw_window_gather";
    case PoolBackward::kNhwcWindows: return "nhwc_windows";
    case PoolBackward::kScatter: return "scatter";
  }
  return "?";
}

}  // namespace cpu
}  // namespace atrous

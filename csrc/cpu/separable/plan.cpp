// Every tiling choice and threshold of the fused separable convolution on the CPU.
#include "plan.h"

#include <algorithm>

#include "../depthwise/plan.h"

namespace atrous {
namespace cpu {

namespace {
// A tile's depthwise result (pixels x C*m, in the accumulation type's size) stays within this
// (with its gradient, about a core's 2 MiB L2 here) unless kMinTilePixels asks for more. Raised
// from 256 KiB and 128 pixels when the pointwise products moved to oneDNN, whose per-call cost
// made small tiles slow (MobileNetV1 512->512 at 14x14, 1 thread: 3.0 -> 2.5 ms forward).
constexpr int64_t kTileBytes = 1024 * 1024;
// Fewer pixels than this make the pointwise product a thin GEMM.
constexpr int64_t kMinTilePixels = 512;
// Enough tasks for load balance, from the shape only.
constexpr int64_t kWantTasks = 32;
// Backward: at most this many chunks of weight-gradient partial sums, and at most this many bytes
// of them.
constexpr int64_t kMaxChunks = 16;
constexpr int64_t kChunkBytes = 64 << 20;

int64_t acc_size(int64_t element_size) { return element_size == 8 ? 8 : 4; }
int64_t span_h(const DepthwiseParams& p) { return (p.kernel_h - 1) * p.dil_h + 1; }
}  // namespace

SeparablePlan plan_separable(const DepthwiseParams& p, int64_t out_channels, int64_t element_size) {
  SeparablePlan plan;
  const int64_t oh = std::max<int64_t>(1, p.out_h), ow = std::max<int64_t>(1, p.out_w);
  const int64_t row_bytes = ow * p.out_channels * acc_size(element_size);
  const int64_t by_cache = std::max<int64_t>(1, kTileBytes / row_bytes);
  const int64_t by_tasks = ceil_div(oh * std::max<int64_t>(1, p.batch), kWantTasks);
  // Bands overlap by the kernel's span in the input: bands of fewer rows than twice that span
  // (per stride) would read most input rows more than once.
  const int64_t by_gemm = std::max(ceil_div(kMinTilePixels, ow), ceil_div(2 * span_h(p), p.stride_h));
  int64_t rows = std::max(std::min(by_cache, by_tasks), by_gemm);
  rows = std::min(rows, oh);
  plan.bands = ceil_div(oh, rows);
  plan.rows_per_band = ceil_div(oh, plan.bands);
  plan.tasks = p.batch * plan.bands;
  plan.max_tile_pixels = plan.rows_per_band * ow;
  plan.max_band_rows =
      plan.bands == 1 ? p.in_h : std::min(p.in_h, (plan.rows_per_band - 1) * p.stride_h + span_h(p));
  const int64_t chunk_bytes =
      (out_channels * p.out_channels + out_channels + p.out_channels * (p.kernel_h * p.kernel_w + 1)) *
      acc_size(element_size);
  const int64_t by_memory = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, chunk_bytes));
  plan.chunks = std::max<int64_t>(1, std::min({plan.tasks, kMaxChunks, by_memory}));
  return plan;
}

Band band_of(const DepthwiseParams& p, const SeparablePlan& plan, int64_t task) {
  Band b;
  b.n = task / plan.bands;
  const int64_t band = task % plan.bands;
  b.oh0 = band * plan.rows_per_band;
  b.oh1 = std::min(p.out_h, b.oh0 + plan.rows_per_band);
  const int64_t first = b.oh0 * p.stride_h - p.pad_h;  // the first input row the band reads
  if (plan.bands == 1) {  // the whole image (which NCHW tiles read in place)
    b.in0 = 0;
    b.in1 = p.in_h;
  } else {
    b.in0 = std::clamp<int64_t>(first, 0, p.in_h);
    b.in1 = std::clamp<int64_t>((b.oh1 - 1) * p.stride_h - p.pad_h + span_h(p), 0, p.in_h);
    if (b.in1 < b.in0) b.in1 = b.in0;
  }
  b.q = p;
  b.q.batch = 1;
  b.q.in_h = b.in1 - b.in0;
  b.q.out_h = b.oh1 - b.oh0;
  b.q.pad_h = b.in0 - first;
  return b;
}

BandOverlaps band_overlaps(const DepthwiseParams& p, const SeparablePlan& plan) {
  BandOverlaps o;
  std::vector<Band> bands;
  for (int64_t i = 0; i < plan.bands; ++i) bands.push_back(band_of(p, plan, i));
  std::vector<int> owner(p.in_h, 0);  // rows owned by exactly one band
  for (int64_t i = 0; i < plan.bands; ++i) {
    const Band& b = bands[i];
    int64_t e0 = i > 0 ? std::max(b.in0, bands[i - 1].in1) : b.in0;
    int64_t e1 = i + 1 < plan.bands ? std::min(b.in1, bands[i + 1].in0) : b.in1;
    e0 = std::min(e0, b.in1);
    e1 = std::max(e1, e0);
    o.excl0.push_back(e0);
    o.excl1.push_back(e1);
    o.shared_offset.push_back(o.shared_per_image);
    o.shared_per_image += (e0 - b.in0) + (b.in1 - e1);
    for (int64_t r = e0; r < e1; ++r) owner[r] = 1;
  }
  for (int64_t r = 0; r < p.in_h; ++r) {
    if (!owner[r]) o.rows_to_finish.push_back(r);
  }
  return o;
}

int64_t shared_row_index(const Band& b, const BandOverlaps& o, int64_t band, int64_t r) {
  const int64_t top = o.excl0[band] - b.in0;
  return r < o.excl0[band] ? r - b.in0 : top + (r - o.excl1[band]);
}

std::string separable_plan_name(const DepthwiseParams& p, int64_t out_channels, int64_t element_size) {
  const SeparablePlan plan = plan_separable(p, out_channels, element_size);
  // The band with the most input rows (an interior one where there is one).
  Band widest = band_of(p, plan, 0);
  for (int64_t i = 1; i < plan.bands; ++i) {
    const Band b = band_of(p, plan, i);
    if (b.oh1 - b.oh0 == plan.rows_per_band && b.q.in_h > widest.q.in_h) widest = b;
  }
  return "bands=" + std::to_string(plan.bands) + " rows=" + std::to_string(plan.rows_per_band) +
         " chunks=" + std::to_string(plan.chunks) + " depthwise(" + plan_name(widest.q, element_size) + ")";
}

}  // namespace cpu
}  // namespace atrous

// Every tiling choice and threshold of the fused separable convolution on the CPU.
#include "plan.h"

#include <ATen/Context.h>

#include <algorithm>
#include <string>

#include "../capability.h"
#include "../depthwise/plan.h"

namespace atrous {
namespace cpu {

namespace {
// A tile's depthwise result (pixels x C*m, in the accumulation type's size) stays within this per
// thread (with its gradient, about a core's 2 MiB L2 here) unless kMinTilePixels asks for more.
// Raised from 256 KiB and 128 pixels when the pointwise products moved to oneDNN, whose per-call
// cost made small tiles slow (MobileNetV1 512->512 at 14x14, 1 thread: 3.0 -> 2.5 ms forward).
constexpr int64_t kTileBytes = 1024 * 1024;
// Several images go as whole images, one or more a tile, where an image's depthwise result is at
// most this many tile budgets: bands of an image cost copies of their NCHW input rows, the
// recomputed overlap, the sums of shared grad_input rows and narrower products, which outweigh the
// cache a band saves. Zen 4, 1 thread, bands against whole images: (4, 128, 56, 56) -> 128 relu
// (1.6 MB an image) NCHW forward 6.23 -> 5.50 ms, backward 14.7 -> 13.1, channels_last backward
// 13.0 -> 12.2; (8, 256, 39, 39) -> 256 NCHW forward 21.4 -> 18.8, backward 44.9 -> 39.8. At 2
// threads (2, 256, 38, 38) -> 728 goes per-thread, an image each, instead of serial: NCHW forward
// 6.93 -> 5.76, backward 14.6 -> 12.5. Images of 2.9 MB ((2, 128, 75, 75) -> 256) were slower
// whole (2 threads, NCHW forward 5.3 -> 7.4 ms).
constexpr int64_t kWholeImageFactor = 2;
// Fewer pixels than this per thread make the pointwise product a thin GEMM.
constexpr int64_t kMinTilePixels = 512;
// Bands grow to this many pixels per thread where their depthwise result stays within
// kWholeImageFactor tile budgets: a band of few rows re-reads its neighbours' input rows (a 3x3
// band of 6 rows reads 8), recomputes them in the backward, and makes thinner products. Zen 4,
// the separable pairs of legacy_xception and mobilenetv1_100 at batch 1, bands of 6 rows -> 14
// (forward, backward, ms): 2 threads, (1, 32, 112, 112) -> 64 NCHW 0.555 -> 0.465 and 1.48 ->
// 1.21, (1, 128, 109, 109) -> 128 channels_last 2.67 -> 2.42 and 6.39 -> 6.17; 1 thread, the same
// 1.00 -> 0.89 and 2.77 -> 2.39, 5.12 -> 4.91 and 12.3 -> 11.6. (1, 728, 65, 65) -> 728 at 2
// threads runs serial in 3 bands instead of per-thread in 9: channels_last 28.2 -> 23.2 and 61.5
// -> 49.2. Slower: (1, 64, 109, 109) -> 128 channels_last at 1 thread, 2.55 -> 2.77 and 6.9 ->
// 7.7 (2 threads: 1.32 -> 1.21 and 3.34 -> 3.03), and (1, 728, 65, 65) -> 728 NCHW at 1 thread
// forward 51.6 -> 56.5.
constexpr int64_t kGoodTilePixels = 1536;
// Enough tasks for load balance, from the shape only.
constexpr int64_t kWantTasks = 32;
// kPerThread needs at least this many tasks per thread (fewer leave threads idle for much of the
// time, 3 tasks on 2 threads a third of it), or tiles of whole images (kWholeImageFactor) that
// share out evenly among the threads (equal tiles, as many per thread; not DeepLab's ASPP at
// (2, 2048, 32, 32), whose dilated kernel makes a tile an 8 MiB image: forward+backward 45 -> 51
// ms per thread); otherwise the tiles run in kSerial order.
constexpr int64_t kMinTasksPerThread = 4;
// Backward: at most this many chunks of weight-gradient partial sums, and at most this many bytes
// of them.
constexpr int64_t kMaxChunks = 16;
constexpr int64_t kChunkBytes = 64 << 20;

int64_t acc_size(int64_t element_size) { return element_size == 8 ? 8 : 4; }
int64_t span_h(const DepthwiseParams& p) { return (p.kernel_h - 1) * p.dil_h + 1; }

// Tiles of at most `bytes` of depthwise result (unless that is fewer than `min_pixels`; bands
// grow to `good_pixels` within kWholeImageFactor times `bytes`), and, for kPerThread, small
// enough for `want_tasks` tiles in all: bands of rows where an image is larger than that, else
// groups of whole images. Where there are several images and one fits kWholeImageFactor times
// `bytes`, whole images whatever `want_tasks`: bands cost copies of their input rows and
// grad_input rows, the recomputed overlap and narrower products ((4, 256, 28, 28) -> 256, relu,
// 2 threads, in bands of 14 rows: forward 2.95 ms and backward 6.43, by whole images 2.58 and
// 5.79; at 1 thread 5.46 and 12.02 against 4.81 and 10.73).
void cut_tiles(const DepthwiseParams& p, int64_t element_size, int64_t bytes, int64_t min_pixels,
               int64_t good_pixels, int64_t want_tasks, SeparablePlan& plan) {
  const int64_t oh = std::max<int64_t>(1, p.out_h), ow = std::max<int64_t>(1, p.out_w);
  const int64_t batch = std::max<int64_t>(1, p.batch);
  const int64_t pixel_bytes = p.out_channels * acc_size(element_size);
  const int64_t row_bytes = ow * pixel_bytes;
  const int64_t by_cache = std::max<int64_t>(1, bytes / row_bytes);
  const int64_t by_tasks = ceil_div(oh * batch, want_tasks);
  // Bands overlap by the kernel's span in the input: bands of fewer rows than twice that span
  // (per stride) would read most input rows more than once.
  const int64_t band_pixels =
      std::max(min_pixels, std::min(good_pixels, kWholeImageFactor * bytes / pixel_bytes));
  const int64_t by_gemm = std::max(ceil_div(band_pixels, ow), ceil_div(2 * span_h(p), p.stride_h));
  const bool whole_images = batch > 1 && row_bytes * oh <= kWholeImageFactor * bytes;
  const int64_t rows = whole_images ? oh : std::min(std::max(std::min(by_cache, by_tasks), by_gemm), oh);
  plan.bands = ceil_div(oh, rows);
  plan.rows_per_band = ceil_div(oh, plan.bands);
  plan.images = 1;
  if (plan.bands == 1) {
    const int64_t image_cache = std::max<int64_t>(1, bytes / (row_bytes * oh));
    const int64_t image_tasks = std::max<int64_t>(1, batch / want_tasks);
    const int64_t image_gemm = ceil_div(min_pixels, oh * ow);
    plan.images = std::clamp<int64_t>(std::max(std::min(image_cache, image_tasks), image_gemm), 1, batch);
  }
  plan.tasks = ceil_div(p.batch, plan.images) * plan.bands;
  plan.max_tile_pixels = plan.images * plan.rows_per_band * ow;
  plan.max_band_rows =
      plan.bands == 1 ? p.in_h : std::min(p.in_h, (plan.rows_per_band - 1) * p.stride_h + span_h(p));
}

// oneDNN's 1x1 convolution where it beat the GEMM (at::mm, MKL's) on tiles, by CPU:
// - the AVX-512 Xeon (Intel): oneDNN twice as fast as at::mm at every thread count;
// - an AVX2 AMD EPYC (Zen 3): oneDNN 1.5-2x slower on tile-sized products ((32 -> 64) x 1600
//   pixels: 0.17-0.26 ms against 0.12 ms; 128 -> 128 x 400 pixels: 0.21-0.25 against 0.16-0.18 ms),
//   and 10x slower on some NCHW shapes, except on NCHW planes of under 64 pixels, where the GEMMs
//   are one per image and a sliver wide ((8, 1024, 5, 5) -> 1024: 7.5 ms against 10.8 ms for the
//   per-image GEMMs; at 10x10 the two tie);
// - an AVX-512 AMD EPYC (Zen 4), where MKL's GEMM runs at the core's peak (95-100 GFLOP/s at one
//   thread on (64 -> 128) x 560 up to (2048 -> 256) x 512): oneDNN on a tile of NCHW rows 1.5x
//   slower ((64 -> 128) x 560 pixels: 142 us against 95 us; the fused MobileNetV1 64 -> 128 s2 at
//   112x112: 6.5 -> 5.0 ms at 1 thread, 3.1 -> 2.2 ms at 2), on channels_last tiles slower or
//   even ((4, 1024, 7, 7): 6.8 -> 4.5 ms), faster only on NCHW planes of up to 19x19 ((4, 512,
//   14, 14): 4.9 against 5.2 ms; (2, 728, 19, 19) 8.5 against 9.0; at 28x28 the GEMMs 7% ahead).
// Planes of NCHW tiles under this many pixels go to oneDNN on CPUs where the GEMMs win otherwise.
int64_t onednn_nchw_plane() { return active_capability() == Capability::kAvx512 ? 400 : 64; }

PointwiseEngine pointwise_engine(const DepthwiseParams& p, int64_t element_size) {
  if (element_size != 4 || !at::hasMKLDNN() || !at::globalContext().userEnabledMkldnn()) return PointwiseEngine::kGemm;
  if (active_capability() == Capability::kAvx512 && std::string(cpu_vendor()) == "intel") return PointwiseEngine::kOneDnn;
  const bool small_nchw = p.layout == Layout::kNCHW && p.out_h * p.out_w < onednn_nchw_plane();
  return small_nchw ? PointwiseEngine::kOneDnn : PointwiseEngine::kGemm;
}

// With oneDNN, the intermediate's gradient by its backward-data (through convolution_backward),
// which reads the weight as the forward does: a transposed copy of a (2048, 1536) weight took
// 3.1 ms against 2.2 ms for the whole product on 49 pixels. Except at one thread on tiles of
// several images: there torch's convolution_backward runs per-image GEMMs instead of oneDNN, and
// oneDNN on the transposed weight is faster ((4, 1024, 7, 7) -> 1024 forward+backward 16.8 against
// 18.9 ms; with one image a tile the other way round: (1, 1536, 7, 7) -> 2048, 20.4 against 15.7).
MidGrad mid_grad_of(const SeparablePlan& plan, int64_t threads) {
  if (plan.pointwise == PointwiseEngine::kGemm) return MidGrad::kGemm;
  return threads == 1 && plan.images > 1 ? MidGrad::kTransposed : MidGrad::kBackwardData;
}
}  // namespace

SeparablePlan plan_separable(const DepthwiseParams& p, int64_t out_channels, int64_t element_size,
                             int64_t threads) {
  threads = std::max<int64_t>(1, threads);
  SeparablePlan plan;
  plan.prefetch_forward = plan_forward(p, element_size).prefetch;
  plan.prefetch_input = plan_backward_input(p, element_size).forward.prefetch;
  plan.prefetch_weight = plan_backward_weight(p, acc_size(element_size)).prefetch;
  cut_tiles(p, element_size, kTileBytes, kMinTilePixels, kGoodTilePixels, kWantTasks, plan);
  plan.pointwise = pointwise_engine(p, element_size);
  const int64_t tile_bytes = plan.max_tile_pixels * p.out_channels * acc_size(element_size);
  const bool even_images = plan.bands == 1 && p.batch % plan.images == 0 && plan.tasks % threads == 0 &&
                           tile_bytes <= kWholeImageFactor * kTileBytes;
  if (threads > 1 && plan.tasks < kMinTasksPerThread * threads && !even_images) {
    plan.order = TileOrder::kSerial;
    // Every thread works on each tile: the tile has each thread's share of cache and pixels.
    cut_tiles(p, element_size, kTileBytes * threads, kMinTilePixels * threads, kGoodTilePixels * threads, 1,
              plan);
    plan.chunks = 1;
    plan.mid_grad = mid_grad_of(plan, threads);
    return plan;
  }
  const int64_t chunk_bytes =
      (out_channels * p.out_channels + out_channels + p.out_channels * (p.kernel_h * p.kernel_w + 1)) *
      acc_size(element_size);
  const int64_t by_memory = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, chunk_bytes));
  plan.chunks = std::max<int64_t>(1, std::min({plan.tasks, kMaxChunks, by_memory}));
  plan.mid_grad = mid_grad_of(plan, threads);
  return plan;
}

DwForwardPlan tile_forward_plan(const SeparablePlan& plan, const DepthwiseParams& q, int64_t element_size) {
  DwForwardPlan f = plan_forward(q, element_size);
  if (f.path == DwForward::kNhwcRows) f.prefetch = f.prefetch || plan.prefetch_forward;
  return f;
}

DwBackwardInputPlan tile_backward_input_plan(const SeparablePlan& plan, const DepthwiseParams& q,
                                             int64_t element_size) {
  DwBackwardInputPlan b = plan_backward_input(q, element_size);
  if (b.path == DwBackwardInput::kFlippedForward && b.forward.path == DwForward::kNhwcRows) {
    b.forward.prefetch = b.forward.prefetch || plan.prefetch_input;
  }
  return b;
}

DwBackwardWeightPlan tile_backward_weight_plan(const SeparablePlan& plan, const DepthwiseParams& q,
                                               int64_t element_size) {
  DwBackwardWeightPlan w = plan_backward_weight(q, element_size);
  if (w.path == DwBackwardWeight::kNhwcRows) w.prefetch = w.prefetch || plan.prefetch_weight;
  return w;
}

Band band_of(const DepthwiseParams& p, const SeparablePlan& plan, int64_t task) {
  Band b;
  b.n = task / plan.bands * plan.images;
  b.images = std::min(plan.images, p.batch - b.n);
  const int64_t band = task % plan.bands;
  b.oh0 = band * plan.rows_per_band;
  b.oh1 = std::min(p.out_h, b.oh0 + plan.rows_per_band);
  const int64_t first = b.oh0 * p.stride_h - p.pad_h;  // the first input row the band reads
  if (plan.bands == 1) {  // whole images (which NCHW tiles read in place)
    b.in0 = 0;
    b.in1 = p.in_h;
  } else {
    b.in0 = std::clamp<int64_t>(first, 0, p.in_h);
    b.in1 = std::clamp<int64_t>((b.oh1 - 1) * p.stride_h - p.pad_h + span_h(p), 0, p.in_h);
    if (b.in1 < b.in0) b.in1 = b.in0;
  }
  b.q = p;
  b.q.batch = b.images;
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

std::string separable_plan_name(const SeparablePlan& plan, const DepthwiseParams& p, int64_t element_size) {
  // The band with the most input rows (an interior one where there is one).
  Band widest = band_of(p, plan, 0);
  for (int64_t i = 1; i < plan.bands; ++i) {
    const Band b = band_of(p, plan, i);
    if (b.oh1 - b.oh0 == plan.rows_per_band && b.q.in_h > widest.q.in_h) widest = b;
  }
  const char* order = plan.order == TileOrder::kSerial ? "serial" : "per-thread";
  const char* engine = plan.pointwise == PointwiseEngine::kOneDnn ? "onednn" : "gemm";
  const char* gmid = plan.mid_grad == MidGrad::kGemm            ? "gemm"
                     : plan.mid_grad == MidGrad::kBackwardData ? "backward-data"
                                                               : "transposed";
  return std::string(order) + " pointwise=" + engine + " gmid=" + gmid + " images=" + std::to_string(plan.images) +
         " bands=" + std::to_string(plan.bands) + " rows=" + std::to_string(plan.rows_per_band) +
         " chunks=" + std::to_string(plan.chunks) + " depthwise(" +
         plan_name(tile_forward_plan(plan, widest.q, element_size), tile_backward_input_plan(plan, widest.q, element_size),
                   tile_backward_weight_plan(plan, widest.q, acc_size(element_size))) +
         ")";
}

}  // namespace cpu
}  // namespace atrous

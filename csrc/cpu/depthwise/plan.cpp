// Every path choice and threshold of the CPU depthwise kernels.
#include "plan.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#include <unistd.h>

#include "../capability.h"

namespace atrous {
namespace cpu {

namespace {
// Enough parallel tasks for load balance over any thread count, still a function of the shape
// only (the weight gradient's partition, and so its summation order, follows the plan).
constexpr int64_t kWantTasks = 64;
// A channel tile's bytes: the padded input rows of a band, L channels each, stay in L1/L2.
constexpr int64_t kTileBytes = 48 * 1024;
// NCHW rows up to this many outputs go across channels instead of along the row.
constexpr int64_t kTileMaxOutW = 24;
// Listed taps per input row of the channel-tile grad_input (a stack array).
constexpr int64_t kTileMaxKernelH = 64;
// Input bytes from which the channels_last row passes prefetch the next output row's rows: where
// the tensors no longer stay in the last-level cache between rows. Measured on a 2-vCPU EPYC
// (32 MB L3, of which a VM keeps about 4 MB): the prefetches made batch-8 layers of 3.7-6.5 MB up
// to 3x faster when memory was busy, and cost 5-20% on layers of 0.4-1.8 MB, which stay in cache.
// On a 2-core Xeon with 480 MB of L3 they cost 15-25% on layers of 5-10 MB, all in cache there: the
// threshold is also a 16th of the last-level cache (last_level_cache_bytes).
constexpr int64_t kStreamBytes = 3 << 20;
// The input bytes a channels_last sweep of the row passes keeps in L1 (half of a 48 KB L1d): the
// kernel rows of one pass position (up to 8 outputs) over a group of channel blocks.
constexpr int64_t kColumnBytes = 24 * 1024;

// The lanes of the active capability's kernel vectors for this element size.
int64_t lanes_of(int64_t element_size) { return active_vector_lanes(element_size); }
int64_t acc_size(int64_t element_size) { return element_size == 8 ? 8 : 4; }

// The bytes of the last-level cache that this CPU's core 0 shares, as Linux reports it in
// /sys/devices/system/cpu/cpu0/cache (the highest level holding data), else as sysconf reports it
// (0 where unknown), or $ATROUS_CPU_CACHE_BYTES (read on every plan: tests set it to reach both
// prefetch choices). sysconf can report a whole socket's L3 where a core reaches one slice of it:
// 320 MB on the Zen 4 EPYC VM, whose cores share a 32 MB L3 (sysfs), which made every layer here
// look cache-resident.
int64_t sysfs_cache_bytes() {
  int64_t best_level = 0, bytes = 0;
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream level_file(dir + "level"), type_file(dir + "type"), size_file(dir + "size");
    int64_t level = 0;
    std::string type, size;
    if (!(level_file >> level) || !(type_file >> type) || !(size_file >> size) || type == "Instruction") continue;
    // "32768K", "1024K", "8M".
    int64_t value = std::atoll(size.c_str());
    if (size.back() == 'K') value <<= 10;
    if (size.back() == 'M') value <<= 20;
    if (level > best_level && value > 0) {
      best_level = level;
      bytes = value;
    }
  }
  return bytes;
}

int64_t last_level_cache_bytes() {
  if (const char* env = std::getenv("ATROUS_CPU_CACHE_BYTES")) return std::atoll(env);
  static const int64_t reported = [] {
    int64_t bytes = sysfs_cache_bytes();
#ifdef _SC_LEVEL3_CACHE_SIZE
    if (bytes <= 0) bytes = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (bytes <= 0) bytes = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return std::max<int64_t>(0, bytes);
  }();
  return reported;
}

// Whether the row passes prefetch: inputs of at least the threshold (kStreamBytes, a 16th of the
// last-level cache) times `times`.
bool streams(const DepthwiseParams& p, int64_t element_size, int64_t times = 1) {
  const int64_t bytes = p.batch * p.channels * p.in_h * p.in_w * element_size;
  return bytes >= times * std::max<int64_t>(kStreamBytes, last_level_cache_bytes() / 16);
}
// The forward of stride-2 rows prefetches from 4x the threshold: each pass prefetches two input
// rows for 8 outputs (twice a stride-1 pass's lines for the same work), and where the input is
// still in cache those are pure cost. On the Zen 4 EPYC (32 MB L3), one thread: (1, 144, 112, 112)
// 3x3 s2, 7.2 MB, 0.212 -> 0.238 ms with prefetches (torch 0.241), (1, 96, 112, 112) s2, 4.8 MB,
// 0.142 -> 0.149; (8, 144, 40, 40) s2 and (8, 48, 80, 80) s2, 7.4 and 9.8 MB, unchanged; (8, 64,
// 80, 80) s2, 13 MB, 0.57 -> 0.45 and (8, 96, 80, 80) s2, 19.7 MB, 1.28 -> 0.75 ms faster. (Their
// weight gradients keep the plain threshold: (8, 144, 40, 40) s2 forward+backward 1.60 -> 1.26 ms.)
constexpr int64_t kStride2StreamTimes = 4;

// Channel blocks per task of the channels_last weight gradient (0: tasks of row bands). Tasks of
// row bands each keep a [block][tap][L] set of sums, added after: with many channels on a small
// map those sums outweigh the tensors ((8, 960, 5, 5) 3x3: 40 tasks of 35 KB, 1.4 MB against an
// input of 0.8 MB). With kManyBlocks blocks or more the tasks split the channels instead, every
// image and row of a few blocks each, into the one set of sums: enough tasks without the bands.
constexpr int64_t kManyBlocks = 16, kBlockTasks = 32;
int64_t weight_block_group(const DepthwiseParams& p, int64_t element_size) {
  const int64_t blocks = ceil_div(p.channels, lanes_of(element_size));
  return blocks >= kManyBlocks ? ceil_div(blocks, kBlockTasks) : 0;
}

// Channel blocks per sweep of the channels_last forward's wide rows (16 and more outputs, or a
// row dilated along W whose widest phase has 16 and more): the passes of a row (of each phase)
// go column by column over a group of blocks, so that the loads of neighbouring
// blocks (one pixel's channels, contiguous) follow each other and the hardware prefetchers see
// one stream, while the group's pixels stay in L1 for the next pass (which reads KW - SW of them
// again). 1: block by block (whole rows of one block, then the next). On the Xeon, one thread:
// (1, 96, 112, 112) 3x3 s2 353 -> 324 us, (1, 32, 112, 112) 3x3 275 -> 227 us; all blocks at once
// on (8, 240, 20, 20) 5x5 cost 17% (its 15 blocks' rows outgrow L1), a group of 6 nothing. On an
// AMD EPYC (Zen 4), one thread, the dilated rows: (4, 728, 33, 33) 3x3 d2 3.4-3.5 -> 2.3 ms,
// (1, 728, 65, 65) 3x3 d2 3.8 -> 3.0 ms (block by block before).
int64_t column_blocks(const DepthwiseParams& p, int64_t element_size) {
  if (ceil_div(p.out_w, p.dil_w) < 16) return 1;  // no wide row, nor a wide phase of a dilated one
  const int64_t span = 7 * p.stride_w + p.kernel_w;  // the pixels a pass of 8 reads per kernel row
  const int64_t per_block = p.kernel_h * span * lanes_of(element_size) * element_size;
  const int64_t blocks = ceil_div(p.channels, lanes_of(element_size));
  return std::clamp<int64_t>(kColumnBytes / per_block, 1, blocks);
}

int64_t tile_rows_for(const DepthwiseParams& p, int64_t out_rows) {
  return (out_rows - 1) * p.stride_h + (p.kernel_h - 1) * p.dil_h + 1;
}

// NCHW rows of up to kTileMaxOutW outputs, and windows whose dilated span stays within a few
// times the plane (a tile holds the whole padded span: dilations far past the input would make it
// huge, and the prepared rows handle those in bounded buffers).
bool bounded_span(const DepthwiseParams& p) {
  return (p.kernel_w - 1) * p.dil_w <= 2 * p.in_w + 16 && (p.kernel_h - 1) * p.dil_h <= 2 * p.in_h + 16;
}
bool channel_tiles_fit(const DepthwiseParams& p) {
  return p.layout == Layout::kNCHW && p.out_w <= kTileMaxOutW && bounded_span(p);
}

// NCHW grad_input across strided columns: the prepared rows interleave grad_output with zeros
// (half of their products are by zero at stride 2, and a row of 80 columns is 5 vectors of per-row
// work), where the channel tiles take each input column's taps as listed. On the Zen 4 EPYC, one
// thread, rows against tiles (torch): (8, 16, 80, 80) 3x3 s2 0.53 against 0.24 ms (0.33), (8, 64,
// 80, 80) 3x3 s2 2.42 against 1.22 (1.86), (1, 144, 56, 56) 5x5 s2 0.46 against 0.22 (0.23),
// (1, 144, 112, 112) 3x3 s2 0.85 against 0.57-0.66 (0.60); two threads alike. Up to this many
// outputs a row (measured to 80: the tiles hold bands of padded input rows, fewer as rows widen),
// and for at least one tile of channels (fewer waste lanes).
constexpr int64_t kTileMaxStridedOutW = 80;
bool strided_input_tiles_fit(const DepthwiseParams& p, int64_t element_size) {
  return p.layout == Layout::kNCHW && p.stride_w > 1 && p.out_w <= kTileMaxStridedOutW && bounded_span(p) &&
         p.channels >= lanes_of(element_size);
}

// A row width row_passes.h computes: in passes (16 and more) or as one whole-row pass.
bool pass_width(int64_t w) { return w >= 16 || w == 5 || w == 7 || w == 10 || w == 14; }

// Whether row_passes.h has whole-row kernels for this geometry: kernel widths 3, 5, 7 at stride 1
// or 2, padded by half the (dilated) kernel, on rows of a pass width. A dilation d along W (at
// stride 1) runs as d interleaved undilated rows, each of which must be a pass width (DeepLab's
// 14-wide rows at d = 2 are two rows of 7).
bool row_shape(const DepthwiseParams& p) {
  const int64_t d = p.dil_w;
  if (!(p.kernel_w == 3 || p.kernel_w == 5 || p.kernel_w == 7) || !(p.stride_w == 1 || p.stride_w == 2) ||
      (d > 1 && p.stride_w != 1) || 2 * p.pad_w != (p.kernel_w - 1) * d || p.in_w != p.out_w * p.stride_w) {
    return false;
  }
  for (int64_t r = 0; r < d; ++r) {
    if (!pass_width(ceil_div(p.out_w - r, d))) return false;
  }
  return true;
}

// Bands of `rows` rows for blocks x batch units: as few as keep the tile within kTileBytes and
// give kWantTasks tasks.
void set_bands(ChannelTilePlan* t, const DepthwiseParams& p, int64_t rows, int64_t bytes_per_row,
               int64_t fixed_rows) {
  const int64_t units = std::max<int64_t>(1, p.batch * t->blocks);
  int64_t per = std::max<int64_t>(1, kTileBytes / std::max<int64_t>(1, bytes_per_row) - fixed_rows);
  per = std::min(per, rows);
  if (units < kWantTasks) per = std::min(per, std::max<int64_t>(1, rows * units / kWantTasks));
  t->rows_per_band = per;
  t->bands = ceil_div(rows, per);
}

ChannelTilePlan output_bands(const DepthwiseParams& p, int64_t element_size) {
  ChannelTilePlan t;
  const int64_t L = lanes_of(element_size);
  t.blocks = ceil_div(p.out_channels, L);
  t.tile_cols = (p.out_w - 1) * p.stride_w + (p.kernel_w - 1) * p.dil_w + 1;
  set_bands(&t, p, p.out_h, t.tile_cols * L * acc_size(element_size) * p.stride_h,
            ((p.kernel_h - 1) * p.dil_h + 1) / p.stride_h);
  t.tile_rows = tile_rows_for(p, t.rows_per_band);
  return t;
}

ChannelTilePlan input_bands(const DepthwiseParams& p, int64_t element_size) {
  ChannelTilePlan t;
  const int64_t L = lanes_of(element_size);
  t.blocks = ceil_div(p.out_channels, L);
  t.tile_cols = p.out_w;
  set_bands(&t, p, p.in_h, p.out_w * L * acc_size(element_size), (p.kernel_h - 1) * p.dil_h + 1);
  // The grad_output rows a band of input rows reads, at most.
  for (int64_t b = 0; b < t.bands; ++b) {
    const int64_t ih0 = b * t.rows_per_band, ih1 = std::min(p.in_h, ih0 + t.rows_per_band);
    const int64_t lo = std::max<int64_t>(
        0, ceil_div(std::max<int64_t>(0, ih0 + p.pad_h - (p.kernel_h - 1) * p.dil_h), p.stride_h));
    const int64_t hi = std::min(p.out_h, floor_div(ih1 - 1 + p.pad_h, p.stride_h) + 1);
    t.tile_rows = std::max(t.tile_rows, hi - lo);
  }
  return t;
}
}  // namespace

DwForwardPlan plan_forward(const DepthwiseParams& p, int64_t element_size) {
  DwForwardPlan plan;
  if (p.layout == Layout::kNHWC) {
    plan.path = p.mult == 1 && row_shape(p) ? DwForward::kNhwcRows : DwForward::kNhwc;
    plan.prefetch = plan.path == DwForward::kNhwcRows &&
                    streams(p, element_size, p.stride_h > 1 || p.stride_w > 1 ? kStride2StreamTimes : 1);
    if (plan.path == DwForward::kNhwcRows) plan.column_blocks = column_blocks(p, element_size);
    return plan;
  }
  if (channel_tiles_fit(p)) {
    plan.path = DwForward::kNchwChannelTiles;
    plan.tiles = output_bands(p, element_size);
    plan.tiles.rows = row_shape(p);
    return plan;
  }
  const int64_t L = lanes_of(element_size);
  // Sweeps down column vectors for square kernels of 3, 5 or 7 with unit stride, or stride 2
  // without dilation along H, unless rounding the rows up to whole vectors wastes over a third, or
  // the window spans far past the plane (the sweep's prepared rows hold the whole padded span).
  const bool sweep = p.kernel_h == p.kernel_w && bounded_span(p) &&
                     (p.kernel_w == 3 || p.kernel_w == 5 || p.kernel_w == 7) &&
                     ((p.stride_h == 1 && p.stride_w == 1) ||
                      (p.stride_h == 2 && p.stride_w == 2 && p.dil_h == 1)) &&
                     2 * ceil_div(p.out_w, L) * L <= 3 * p.out_w;
  // Whole planes as one flat row when rows are narrow (per-row costs dominate), or when the padded
  // pitch computes at most 3/4 of the lanes a row-by-row pass would (33-wide rows round up to 64
  // lanes). Wider rows keep the row pairs, which share each load between two output rows.
  const int64_t block = p.out_w > 2 * L ? 4 * L : (p.out_w > L ? 2 * L : L);
  const int64_t n_round = ceil_div(p.out_w, block) * block;
  const int64_t pitch = p.out_w + (p.kernel_w - 1) * p.dil_w;
  const int64_t planes = p.batch * p.out_channels;
  if (sweep) {
    plan.path = DwForward::kNchwSweep;
    // At stride 2 the sweep's row copies wait on the input's first touch (40% of (8, 96, 80, 80)
    // 3x3 s2 at one thread): inputs past the stride-2 threshold prefetch rows ahead (there 2.48 ->
    // 2.34 ms at one thread, 1.10 -> 0.93 at two; at unit stride the same prefetches cost 4-10%).
    plan.prefetch = p.stride_h == 2 && streams(p, element_size, kStride2StreamTimes);
  } else if (p.stride_h == 1 && p.stride_w == 1 && planes >= kWantTasks &&
             (p.out_w <= 32 || 4 * pitch <= 3 * n_round)) {
    plan.path = DwForward::kNchwFlat;
  } else {
    plan.path = DwForward::kNchwRows;
  }
  return plan;
}

// channels_last grad_input by phases (m = 1): blocks of 8 columns of a phase, each weight vector
// loaded once for the 8, and the sums of 4 vectors of channels for 4 columns in registers. Where
// grad_input is larger than the stride-2 forward's prefetch threshold, one column at a time, all its
// channels, so that the tensor is written in order: on the Zen 4 EPYC, one thread, 3x3 s2, blocks
// of 8 against 1: (8, 144, 80, 80) (29 MB) 4.2 against 2.6 ms, (8, 96, 80, 80) 2.7 against 2.1,
// (8, 64, 80, 80) 1.9 against 1.5; in cache the blocks win: (1, 144, 112, 112) (7.2 MB) 0.29 against
// 0.53, (8, 144, 40, 40) 0.30 against 0.48, (8, 16, 80, 80) 0.21 against 0.60. (Prefetching each
// block's columns ahead did not help the large ones.)
// Stride-2 rows 3 wide (no dilation along W) go in pairs of pixels (5 wide, pairs were 10% slower
// than the blocks at two threads: (8, 240, 20, 20) 5x5 s2 138-146 against 121-139 us, (8, 72, 40, 40)
// 178-193 against 160-180); from the plain stream threshold (streams()) their 64-byte vectors
// bypass the caches (non-temporal stores: each line written whole, never read in first, and
// grad_input does not evict what the other layers of a training step use). Timed alone, over and
// over, non-temporal stores lost below 12 MiB at two threads on the Zen 4 EPYC ((8, 144, 40, 40) 3x3
// s2, 7.4 MB: 242-272 against 180-201 us); in a forward+backward step of the layer, as training runs
// it, they won everywhere, forward+backward ms, plain / non-temporal (torch), two threads:
// (8, 144, 40, 40) 0.875-0.957 / 0.637-0.752 (0.680-0.837), (1, 144, 112, 112) 0.897-0.978 /
// 0.585-0.674 (0.644-0.807), (1, 96, 112, 112) 0.577-0.603 / 0.405-0.420 (0.526-0.610), (8, 48, 80,
// 80) 1.181-1.185 / 0.904-0.939 (0.950-1.512); larger ones also alone: (8, 96, 80, 80) 19.7 MB
// grad_input 964 / 454-459 us at two threads, 1884 / 852 at one.
DwBackwardInputPlan plan_backward_input(const DepthwiseParams& p, int64_t element_size) {
  DwBackwardInputPlan plan;
  if (flipped_forward_params(p, &plan.flipped)) {
    plan.path = DwBackwardInput::kFlippedForward;
    plan.forward = plan_forward(plan.flipped, element_size);
  } else if (p.layout == Layout::kNHWC) {
    plan.path = p.mult == 1 ? DwBackwardInput::kNhwcPhases : DwBackwardInput::kNhwc;
    plan.column_block = streams(p, element_size, kStride2StreamTimes) ? 1 : 8;
    plan.pairs = plan.path == DwBackwardInput::kNhwcPhases && p.stride_w == 2 && p.dil_w == 1 && p.kernel_w == 3;
    plan.stream = plan.pairs && streams(p, element_size) && element_size >= 4 &&
                  lanes_of(element_size) * element_size == 64 &&
                  p.channels * element_size % 64 == 0;
  } else if ((channel_tiles_fit(p) || strided_input_tiles_fit(p, element_size)) && p.mult == 1 &&
             p.kernel_h <= kTileMaxKernelH) {
    plan.path = DwBackwardInput::kNchwChannelTiles;
    plan.tiles = input_bands(p, element_size);
  } else {
    plan.path = DwBackwardInput::kNchwRows;
  }
  return plan;
}

DwBackwardWeightPlan plan_backward_weight(const DepthwiseParams& p, int64_t element_size) {
  DwBackwardWeightPlan plan;
  DepthwiseParams flipped;
  if (p.layout == Layout::kNHWC && p.mult == 1 && row_shape(p)) {
    plan.path = DwBackwardWeight::kNhwcRows;
    plan.prefetch = streams(p, element_size);
    plan.block_group = weight_block_group(p, element_size);
  } else if (p.layout == Layout::kNHWC) {
    plan.path = DwBackwardWeight::kNhwc;
    plan.fuse_with_input = flipped_forward_params(p, &flipped);
  } else if (channel_tiles_fit(p)) {
    plan.path = DwBackwardWeight::kNchwChannelTiles;
    plan.tiles = output_bands(p, element_size);
    plan.tiles.rows = row_shape(p);
  } else {
    plan.path = DwBackwardWeight::kNchwRows;
  }
  return plan;
}

namespace {
const char* name_of(DwForward f) {
  switch (f) {
    case DwForward::kNchwChannelTiles: return "nchw_channel_tiles";
    case DwForward::kNchwSweep: return "nchw_sweep";
    case DwForward::kNchwFlat: return "nchw_flat";
    case DwForward::kNchwRows: return "nchw_rows";
    case DwForward::kNhwcRows: return "nhwc_rows";
    case DwForward::kNhwc: return "nhwc";
  }
  return "?";
}

std::string forward_name(const DwForwardPlan& f) {
  return std::string(name_of(f.path)) + (f.path == DwForward::kNchwChannelTiles && f.tiles.rows ? "(rows)" : "") +
         (f.column_blocks > 1 ? "+columns" + std::to_string(f.column_blocks) : "") + (f.prefetch ? "+prefetch" : "");
}
}  // namespace

std::string plan_name(const DepthwiseParams& p, int64_t element_size) {
  return plan_name(plan_forward(p, element_size), plan_backward_input(p, element_size),
                   plan_backward_weight(p, element_size));
}

std::string plan_name(const DwForwardPlan& f, const DwBackwardInputPlan& bi, const DwBackwardWeightPlan& bw) {
  std::string s = "forward=" + forward_name(f);
  s += " backward_input=";
  switch (bi.path) {
    case DwBackwardInput::kFlippedForward:
      s += "flipped_forward(" + forward_name(bi.forward) + ")";
      break;
    case DwBackwardInput::kNchwChannelTiles: s += "nchw_channel_tiles"; break;
    case DwBackwardInput::kNchwRows: s += "nchw_rows"; break;
    case DwBackwardInput::kNhwc: s += "nhwc"; break;
    case DwBackwardInput::kNhwcPhases:
      s += bi.column_block == 1 ? "nhwc_phases+sequential" : "nhwc_phases";
      if (bi.pairs) s += "+pairs";
      if (bi.stream) s += "+stream";
      break;
  }
  s += " backward_weight=";
  switch (bw.path) {
    case DwBackwardWeight::kNchwChannelTiles: s += bw.tiles.rows ? "nchw_channel_tiles(rows)" : "nchw_channel_tiles"; break;
    case DwBackwardWeight::kNchwRows: s += "nchw_rows"; break;
    case DwBackwardWeight::kNhwcRows:
      s += "nhwc_rows";
      if (bw.block_group > 0) s += "+blocks" + std::to_string(bw.block_group);
      if (bw.prefetch) s += "+prefetch";
      break;
    case DwBackwardWeight::kNhwc: s += bw.fuse_with_input ? "nhwc+input" : "nhwc"; break;
  }
  return s;
}

}  // namespace cpu
}  // namespace atrous

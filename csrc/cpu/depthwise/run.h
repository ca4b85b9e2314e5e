// Host side: runs a planned depthwise direction (plan.h) through the kernel table of the CPU
// capability in use (dispatch.h), on raw pointers to tensors in the plan's layout. The depthwise
// ops (ops.cpp) and the fused separable op (../separable) both reach the kernels through here.
#pragma once

#include "dispatch.h"
#include "plan.h"

namespace atrous {
namespace cpu {

template <typename T>
const DepthwiseKernels<T>& depthwise_kernels() {
  return active_kDepthwiseKernels().get<T>();
}

template <typename T>
void run_dw_forward(const DepthwiseParams& p, const DwForwardPlan& plan, const T* in, const T* w, const T* b,
                    T* out) {
  const auto& k = depthwise_kernels<T>();
  if (plan.path == DwForward::kNhwc) {
    k.forward_nhwc(p, in, w, b, out);
  } else if (plan.path == DwForward::kNhwcRows) {
    k.forward_nhwc_rows(p, plan.prefetch, plan.column_blocks, in, w, b, out);
  } else {
    k.forward_nchw(p, plan, in, w, b, out);
  }
}

// grad_input into gi (every element written). flipped_w: the weight flipped along both spatial
// axes, read only on the kFlippedForward path.
template <typename T>
void run_dw_backward_input(const DepthwiseParams& p, const DwBackwardInputPlan& plan, const T* go, const T* w,
                           const T* flipped_w, T* gi) {
  const auto& k = depthwise_kernels<T>();
  switch (plan.path) {
    case DwBackwardInput::kFlippedForward:
      run_dw_forward<T>(plan.flipped, plan.forward, go, flipped_w, nullptr, gi);
      break;
    case DwBackwardInput::kNchwChannelTiles:
      k.backward_input_nchw_channel_tiles(p, plan.tiles, go, w, gi);
      break;
    case DwBackwardInput::kNchwRows:
      k.backward_input_nchw(p, go, w, gi);
      break;
    case DwBackwardInput::kNhwc:
      k.backward_input_nhwc(p, go, w, gi);
      break;
    case DwBackwardInput::kNhwcPhases:
      k.backward_input_nhwc_phases(p, plan, go, w, gi);
      break;
  }
}

// The weight gradient into gw and the bias gradient into gb, each when not null (at least one
// is): one pass over grad_output for both where the kernel takes both.
template <typename T>
void run_dw_backward_params(const DepthwiseParams& p, const DwBackwardWeightPlan& plan, const T* go, const T* in,
                            T* gw, T* gb) {
  const auto& k = depthwise_kernels<T>();
  const bool nhwc = p.layout == Layout::kNHWC;
  if (gw == nullptr) {
    (nhwc ? k.backward_bias_nhwc : k.backward_bias_nchw)(p, go, gb);
    return;
  }
  switch (plan.path) {
    case DwBackwardWeight::kNchwChannelTiles:
      k.backward_weight_nchw_channel_tiles(p, plan.tiles, go, in, gw);
      if (gb != nullptr) k.backward_bias_nchw(p, go, gb);
      break;
    case DwBackwardWeight::kNchwRows:
      k.backward_weight_nchw(p, go, in, gw, gb);
      break;
    case DwBackwardWeight::kNhwcRows:
      k.backward_weight_nhwc_rows(p, plan.prefetch, plan.block_group, go, in, gw);
      if (gb != nullptr) k.backward_bias_nhwc(p, go, gb);
      break;
    case DwBackwardWeight::kNhwc:
      k.backward_weight_nhwc(p, go, in, gw, gb);
      break;
  }
}

}  // namespace cpu
}  // namespace atrous

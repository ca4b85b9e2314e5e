// This CPU capability's table of the depthwise kernels (dispatch.h). Constant-initialised: no
// code of this file runs before the capability is chosen.
#include "dispatch.h"
#include "kernels.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

template <typename T>
constexpr DepthwiseKernels<T> kernels_for() {
  return {
      .forward_nchw = &forward_nchw<T>,
      .forward_nhwc = &forward_nhwc<T>,
      .forward_nhwc_rows = &forward_nhwc_rows<T>,
      .backward_input_nchw = &backward_input_nchw<T>,
      .backward_input_nchw_channel_tiles = &backward_input_nchw_channel_tiles<T>,
      .backward_input_nhwc = &backward_input_nhwc<T>,
      .backward_input_nhwc_phases = &backward_input_nhwc_phases<T>,
      .backward_weight_nchw = &backward_weight_nchw<T>,
      .backward_weight_nchw_channel_tiles = &backward_weight_nchw_channel_tiles<T>,
      .backward_weight_nhwc = &backward_weight_nhwc<T>,
      .backward_weight_nhwc_rows = &backward_weight_nhwc_rows<T>,
      .backward_input_weight_nhwc = &backward_input_weight_nhwc<T>,
      .backward_bias_nchw = &backward_bias_nchw<T>,
      .backward_bias_nhwc = &backward_bias_nhwc<T>,
  };
}

}  // namespace

extern constinit const DepthwiseKernelTable kDepthwiseKernels;
constinit const DepthwiseKernelTable kDepthwiseKernels{kernels_for<float>(), kernels_for<double>(),
                                                       kernels_for<c10::Half>(), kernels_for<c10::BFloat16>()};

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

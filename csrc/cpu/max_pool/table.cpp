// This CPU capability's table of the max-pool kernels (dispatch.h). Constant-initialised: no code
// of this file runs before the capability is chosen.
#include "dispatch.h"
#include "kernels.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

template <typename T>
constexpr MaxPoolKernels<T> kernels_for() {
  return {
      .forward_nchw_rows = &max_pool_forward_nchw_rows<T>,
      .forward_nhwc = &max_pool_forward_nhwc<T>,
      .forward_generic = &max_pool_forward_generic<T>,
      .backward_nchw = &max_pool_backward_nchw<T>,
      .backward_nhwc_windows = &max_pool_backward_nhwc_windows<T>,
      .backward_scatter = &max_pool_backward_scatter<T>,
  };
}

}  // namespace

extern constinit const MaxPoolKernelTable kMaxPoolKernels;
constinit const MaxPoolKernelTable kMaxPoolKernels{kernels_for<float>(), kernels_for<double>(),
                                                   kernels_for<c10::Half>(), kernels_for<c10::BFloat16>()};

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

// This CPU capability's table of the max-unpool kernels (dispatch.h). Constant-initialised: no
// code of this file runs before the capability is chosen.
#include "dispatch.h"
#include "kernels.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {
namespace {

template <typename T>
constexpr MaxUnpoolKernels<T> kernels_for() {
  return {
      .forward_i64 = &max_unpool_forward<T, int64_t>,
      .forward_i32 = &max_unpool_forward<T, int32_t>,
      .backward_i64 = &max_unpool_backward<T, int64_t>,
      .backward_i32 = &max_unpool_backward<T, int32_t>,
  };
}

}  // namespace

extern constinit const MaxUnpoolKernelTable kMaxUnpoolKernels;
constinit const MaxUnpoolKernelTable kMaxUnpoolKernels{kernels_for<float>(), kernels_for<double>(),
                                                       kernels_for<c10::Half>(), kernels_for<c10::BFloat16>()};

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

// The channels_last forward over the whole output.
#include "kernels.h"
#include "nhwc_forward.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

template <typename scalar_t>
void forward_nhwc(const DepthwiseParams& p, const scalar_t* in, const scalar_t* weight,
                  const scalar_t* bias, scalar_t* out) {
  forward_nhwc_with(p, in, weight, bias, out, [&](auto& compute_rows) {
    const int64_t rblocks = split_rows(p.batch, p.out_h);
    const int64_t rows_per = ceil_div(p.out_h, rblocks);
    at::parallel_for(0, p.batch * rblocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t oh0 = (task % rblocks) * rows_per;
        compute_rows(task / rblocks, oh0, std::min(p.out_h, oh0 + rows_per));
      }
    });
  });
}

template void forward_nhwc<float>(const DepthwiseParams&, const float*, const float*, const float*, float*);
template void forward_nhwc<double>(const DepthwiseParams&, const double*, const double*, const double*, double*);
template void forward_nhwc<c10::Half>(const DepthwiseParams&, const c10::Half*, const c10::Half*, const c10::Half*, c10::Half*);
template void forward_nhwc<c10::BFloat16>(const DepthwiseParams&, const c10::BFloat16*, const c10::BFloat16*, const c10::BFloat16*, c10::BFloat16*);
}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

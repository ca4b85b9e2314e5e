// CPU max-unpool backward: grad_input[i] = grad_output[plane, indices[i]] (zero for an index out
// of range, which the forward refuses). One task per row of the input.
#include <ATen/Parallel.h>

#include "kernels.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

template <typename scalar_t, typename index_t>
void max_unpool_backward(const UnpoolParams& p, const scalar_t* go, const index_t* id, scalar_t* gi) {
  const int64_t plane_out = p.out_h * p.out_w, C = p.channels;
  const bool nhwc = p.layout == Layout::kNHWC;
  const int64_t row = p.in_w * (nhwc ? C : 1);
  const int64_t rows_per_plane = p.in_h;
  at::parallel_for(0, p.batch * (nhwc ? 1 : C) * p.in_h, 16, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const index_t* t = id + task * row;
      scalar_t* g = gi + task * row;
      const int64_t plane = task / rows_per_plane;  // n for NHWC, n * C + c for NCHW
      if (nhwc) {
        const scalar_t* src = go + plane * plane_out * C;
        for (int64_t w = 0; w < p.in_w; ++w)
          for (int64_t c = 0; c < C; ++c) {
            const int64_t k = t[w * C + c];
            g[w * C + c] = (k >= 0 && k < plane_out) ? src[k * C + c] : scalar_t(0);
          }
      } else {
        const scalar_t* src = go + plane * plane_out;
        for (int64_t w = 0; w < p.in_w; ++w) {
          const int64_t k = t[w];
          g[w] = (k >= 0 && k < plane_out) ? src[k] : scalar_t(0);
        }
      }
    }
  });
}

#define INSTANTIATE(T)                                                                             \
  template void max_unpool_backward<T, int64_t>(const UnpoolParams&, const T*, const int64_t*, T*); \
  template void max_unpool_backward<T, int32_t>(const UnpoolParams&, const T*, const int32_t*, T*);
ATROUS_MAX_UNPOOL_INSTANTIATE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

// CPU max-pool forward, scalar, either layout: NCHW output rows of under 4 elements, and
// planes too large for the vector kernels' 32-bit position lanes. One logical output row (n, c,
// oh) a step, each element by the scalar window scan.
#include <ATen/Parallel.h>

#include "../simd.h"
#include "kernels.h"
#include "window.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

template <typename scalar_t>
void max_pool_forward_generic(const PoolParams& p, const PoolPlan& plan, const scalar_t* in, scalar_t* out,
                              int64_t* idx) {
  using acc_t = acc_type_t<scalar_t>;
  const bool nhwc = p.layout == Layout::kNHWC;
  const int64_t C = p.channels;
  // Steps between neighbouring elements of a plane, and from one (n, c) plane to the next.
  const int64_t in_col = nhwc ? C : 1, in_row = p.in_w * in_col;
  const int64_t out_col = nhwc ? C : 1;
  at::parallel_for(0, p.batch * C * p.out_h, plan.forward_grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = r % p.out_h, c = (r / p.out_h) % C, n = r / (p.out_h * C);
      const int64_t in_plane = nhwc ? n * p.in_h * p.in_w * C + c : (n * C + c) * p.in_h * p.in_w;
      const int64_t out_first =
          nhwc ? (n * p.out_h + oh) * p.out_w * C + c : ((n * C + c) * p.out_h + oh) * p.out_w;
      for (int64_t ow = 0; ow < p.out_w; ++ow) {
        acc_t m;
        int64_t at;
        scan_window(p, WindowTaps(p, oh, ow), in + in_plane, in_row, in_col, &m, &at);
        out[out_first + ow * out_col] = static_cast<scalar_t>(m);
        if (idx) idx[out_first + ow * out_col] = at;
      }
    }
  });
}

#define INSTANTIATE(T) \
  template void max_pool_forward_generic<T>(const PoolParams&, const PoolPlan&, const T*, T*, int64_t*);
ATROUS_MAX_POOL_INSTANTIATE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

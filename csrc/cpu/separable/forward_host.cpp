// The fused forward: for each tile (a band of output rows of one image, or whole images), the
// depthwise result into the worker's cache-sized buffer, the activation there, and the pointwise
// product from there into the output. The intermediate never exists as a whole (unless it is
// no larger than a tile).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include "tiles.h"

namespace atrous {
namespace cpu {

namespace {
template <typename T>
void forward_tiles(const SeparableArgs& a, const SeparablePlan& plan, at::Tensor& out) {
  auto run = [&](int64_t begin, int64_t end) {
    TileWorker<T> w(a, plan);
    for (int64_t task = begin; task < end; ++task) {
      const Band b = band_of(a.p, plan, task);
      const at::Tensor act = w.depthwise(b, w.band_input(b));
      at::Tensor tile = w.image_tile(out, b, a.out_channels);
      w.pointwise(tile, act, b);
    }
  };
  if (plan.order == TileOrder::kSerial) {
    run(0, plan.tasks);  // in this thread; every step inside uses all threads
  } else {
    at::parallel_for(0, plan.tasks, 1, run);
  }
}
}  // namespace

at::Tensor separable_forward(const SeparableArgs& a, const SeparablePlan& plan) {
  const DepthwiseParams& p = a.p;
  at::Tensor out = at::empty({p.batch, a.out_channels, p.out_h, p.out_w},
                             a.input.options().memory_format(memory_format_of(p.layout)));
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.input.scalar_type(), "atrous_separable_fwd",
                                  [&] { forward_tiles<scalar_t>(a, plan, out); });
  return out;
}

}  // namespace cpu
}  // namespace atrous

// CPU entry points of the max-unpool ops and their registration: set-up and checks
// (csrc/common/unpool_host.h), then the kernels of the CPU capability in use (dispatch.h). An
// invalid index raises after the kernel's pass, so the caller never sees the partly written output.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../../common/unpool_host.h"
#include "dispatch.h"

namespace atrous {
namespace cpu {
namespace {

// The active capability's kernels for scalar_t.
template <typename scalar_t>
const MaxUnpoolKernels<scalar_t>& kernels() {
  return active_kMaxUnpoolKernels().get<scalar_t>();
}

at::Tensor max_unpool2d_cpu(const at::Tensor& input, const at::Tensor& indices, at::IntArrayRef kernel_size,
                            at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef output_size,
                            bool validate_indices) {
  (void)validate_indices;  // on the CPU the check costs nothing extra and always runs
  auto s = setup_max_unpool(input, indices, kernel_size, stride, padding, output_size);
  if (s.output.numel() == 0) {
    // An empty output plane leaves no valid index for any value there is.
    if (s.input.numel() > 0) throw_bad_index(s.p, s.indices, 0);
    return s.output;
  }
  int64_t bad = kUnpoolNoBadIndex;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "atrous_unpool", [&] {
    const auto& k = kernels<scalar_t>();
    const scalar_t* in = s.input.const_data_ptr<scalar_t>();
    scalar_t* out = s.output.mutable_data_ptr<scalar_t>();
    bad = s.indices.scalar_type() == at::kInt ? k.forward_i32(s.p, in, s.indices.const_data_ptr<int32_t>(), out)
                                              : k.forward_i64(s.p, in, s.indices.const_data_ptr<int64_t>(), out);
  });
  if (bad != kUnpoolNoBadIndex) throw_bad_index(s.p, s.indices, bad);
  return s.output;
}

at::Tensor max_unpool2d_backward_cpu(const at::Tensor& grad_output, const at::Tensor& indices) {
  auto s = setup_max_unpool_backward(grad_output, indices);
  if (s.grad_input.numel() == 0) return s.grad_input;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "atrous_unpool_bwd", [&] {
    const auto& k = kernels<scalar_t>();
    const scalar_t* go = s.grad_output.const_data_ptr<scalar_t>();
    scalar_t* gi = s.grad_input.mutable_data_ptr<scalar_t>();
    if (s.indices.scalar_type() == at::kInt) {
      k.backward_i32(s.p, go, s.indices.const_data_ptr<int32_t>(), gi);
    } else {
      k.backward_i64(s.p, go, s.indices.const_data_ptr<int64_t>(), gi);
    }
  });
  return s.grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(atrous, CPU, m) {
  m.impl("max_unpool2d", &max_unpool2d_cpu);
  m.impl("max_unpool2d_backward", &max_unpool2d_backward_cpu);
}

}  // namespace cpu
}  // namespace atrous

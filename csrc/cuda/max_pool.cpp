// CUDA host side of max-pool: checks and set-up (csrc/common/pool_host.h), device guard, current
// stream, then the torch-free kernels of max_pool_kernels.cu.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "../common/pool_host.h"
#include "max_pool_cuda.h"

namespace atrous {
namespace {

std::tuple<at::Tensor, at::Tensor> max_pool2d_cuda(const at::Tensor& input,
                                                   at::IntArrayRef kernel_size,
                                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                                   at::IntArrayRef dilation, bool ceil_mode,
                                                   bool with_indices) {
  TORCH_CHECK(input.is_cuda(), "atrous: input must be a CUDA tensor, got ", input.device());
  c10::cuda::CUDAGuard guard(input.device());
  auto s = setup_max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, with_indices);
  if (s.output.numel() == 0) return {s.output, s.indices};
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(input.device().index()).stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                                  "atrous_max_pool", [&] {
    C10_CUDA_CHECK(cuda::max_pool_forward<scalar_t>(
        s.p, s.input.const_data_ptr<scalar_t>(), s.output.mutable_data_ptr<scalar_t>(),
        with_indices ? s.indices.mutable_data_ptr<int64_t>() : nullptr, stream));
  });
  return {s.output, s.indices};
}

at::Tensor max_pool2d_backward_cuda(const at::Tensor& grad_output, const at::Tensor& indices,
                                    at::IntArrayRef input_size, at::IntArrayRef kernel_size,
                                    at::IntArrayRef stride, at::IntArrayRef padding,
                                    at::IntArrayRef dilation, bool ceil_mode) {
  TORCH_CHECK(grad_output.is_cuda(), "atrous: grad_output must be a CUDA tensor, got ",
              grad_output.device());
  c10::cuda::CUDAGuard guard(grad_output.device());
  auto s = setup_max_pool_backward(grad_output, indices, input_size, kernel_size, stride, padding,
                                   dilation, ceil_mode);
  if (s.grad_input.numel() == 0) return s.grad_input;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(grad_output.device().index()).stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(),
                                  "atrous_max_pool_bwd", [&] {
    C10_CUDA_CHECK(cuda::max_pool_backward<scalar_t>(
        s.p, s.grad_output.const_data_ptr<scalar_t>(), s.indices.const_data_ptr<int64_t>(),
        s.grad_input.mutable_data_ptr<scalar_t>(), stream));
  });
  return s.grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(atrous, CUDA, m) {
  m.impl("max_pool2d", &max_pool2d_cuda);
  m.impl("max_pool2d_backward", &max_pool2d_backward_cuda);
}

}  // namespace atrous

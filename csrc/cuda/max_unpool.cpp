// CUDA host side of max-unpool: checks, device guard, current stream, the gather/scatter choice,
// and the index check, which reads two words back from the device (a host synchronisation) when
// validate_indices is set.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>

#include "../common/unpool_host.h"
#include "max_unpool_cuda.h"

namespace atrous {
namespace {

at::Tensor max_unpool2d_cuda(const at::Tensor& input, const at::Tensor& indices,
                             at::IntArrayRef kernel_size, at::IntArrayRef stride,
                             at::IntArrayRef padding, at::IntArrayRef output_size,
                             bool validate_indices) {
  TORCH_CHECK(input.is_cuda(), "atrous: input must be a CUDA tensor, got ", input.device());
  c10::cuda::CUDAGuard guard(input.device());
  auto s = setup_max_unpool(input, as_int64_indices(indices), kernel_size, stride, padding,
                            output_size);
  if (s.output.numel() == 0) {
    // An empty output plane leaves no valid index for any value there is.
    if (s.input.numel() > 0) throw_bad_index(s.p, s.indices, 0);
    return s.output;
  }
  const UnpoolParams& p = s.p;
  TORCH_CHECK(p.in_h * p.in_w < int64_t(std::numeric_limits<unsigned int>::max()),
              "atrous.max_unpool2d on CUDA supports input planes of fewer than 2^32 - 1 elements, "
              "got ", p.in_h, "x", p.in_w);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(input.device().index()).stream();
  if (validate_indices) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    C10_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
    TORCH_CHECK(capture == cudaStreamCaptureStatusNone,
                "atrous.max_unpool2d: validate_indices=True reads the index check back to the "
                "host, which CUDA graph capture forbids; pass validate_indices=False (invalid "
                "indices are then skipped, never written out of bounds)");
  }
  at::Tensor flags = at::empty({2}, input.options().dtype(at::kLong));
  C10_CUDA_CHECK(cudaMemsetAsync(flags.data_ptr(), 0xFF, 2 * sizeof(int64_t), stream));
  auto* f = reinterpret_cast<unsigned long long*>(flags.data_ptr<int64_t>());
  auto read_flags = [&](int64_t* bad, bool* fallback) {
    // Into pinned memory (torch's caching host allocator), then wait for the stream: the one
    // host synchronisation of the validated op.
    const at::Tensor h = at::empty({2}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
    C10_CUDA_CHECK(cudaMemcpyAsync(h.data_ptr<int64_t>(), flags.const_data_ptr<int64_t>(),
                                   2 * sizeof(int64_t), cudaMemcpyDeviceToHost, stream));
    C10_CUDA_CHECK(cudaStreamSynchronize(stream));
    *bad = h.data_ptr<int64_t>()[0];
    *fallback = h.data_ptr<int64_t>()[1] == 0;
  };
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "atrous_unpool",
                                  [&] {
    const scalar_t* in = s.input.const_data_ptr<scalar_t>();
    const int64_t* id = s.indices.const_data_ptr<int64_t>();
    scalar_t* out = s.output.mutable_data_ptr<scalar_t>();
    auto scatter = [&](bool only_if_fallback) {
      at::Tensor winner = at::empty({s.output.numel()}, input.options().dtype(at::kInt));
      C10_CUDA_CHECK(cuda::unpool_scatter<scalar_t>(
          p, in, id, out, reinterpret_cast<unsigned int*>(winner.data_ptr<int>()), f,
          only_if_fallback, stream));
    };
    if (p.gather) {
      C10_CUDA_CHECK(cuda::unpool_gather<scalar_t>(p, in, id, out, f, stream));
      if (validate_indices) {
        int64_t bad;
        bool fallback;
        read_flags(&bad, &fallback);
        if (bad != -1) throw_bad_index(p, s.indices, bad);
        if (fallback) scatter(false);
      } else {
        scatter(true);  // runs only if the gather pass found an index outside its window
      }
    } else {
      scatter(false);
      if (validate_indices) {
        int64_t bad;
        bool fallback;
        read_flags(&bad, &fallback);
        if (bad != -1) throw_bad_index(p, s.indices, bad);
      }
    }
  });
  return s.output;
}

at::Tensor max_unpool2d_backward_cuda(const at::Tensor& grad_output, const at::Tensor& indices) {
  TORCH_CHECK(grad_output.is_cuda(), "atrous: grad_output must be a CUDA tensor");
  c10::cuda::CUDAGuard guard(grad_output.device());
  auto s = setup_max_unpool_backward(grad_output, as_int64_indices(indices));
  if (s.grad_input.numel() == 0) return s.grad_input;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(grad_output.device().index()).stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(),
                                  "atrous_unpool_bwd", [&] {
    C10_CUDA_CHECK(cuda::unpool_backward<scalar_t>(
        s.p, s.grad_output.const_data_ptr<scalar_t>(), s.indices.const_data_ptr<int64_t>(),
        s.grad_input.mutable_data_ptr<scalar_t>(), stream));
  });
  return s.grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(atrous, CUDA, m) {
  m.impl("max_unpool2d", &max_unpool2d_cuda);
  m.impl("max_unpool2d_backward", &max_unpool2d_backward_cuda);
}

}  // namespace atrous

// Interface between the host code (depthwise.cpp, which uses ATen) and the CUDA kernels
// (depthwise_kernels.cu, which includes no torch headers). Pointers are to tensors already in the
// layout named by params.layout; every launcher enqueues on `stream` and returns the launch status.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "../common/depthwise_params.h"

namespace atrous {
namespace cuda {

// Forward. `weight` is [Co][kH*kW] for NCHW and transposed to [kH*kW][Co] for NHWC; bias may be
// null.
template <typename scalar_t>
cudaError_t depthwise_forward(const DepthwiseParams& p, const scalar_t* input,
                              const scalar_t* weight, const scalar_t* bias, scalar_t* output,
                              cudaStream_t stream);

// grad_input, with the weight laid out as for the forward of the same layout.
template <typename scalar_t>
cudaError_t depthwise_backward_input(const DepthwiseParams& p, const scalar_t* grad_output,
                                     const scalar_t* weight, scalar_t* grad_input,
                                     cudaStream_t stream);

// Number of partial sums per weight element the grad_weight reduction uses; the caller allocates
// out_channels * kH * kW * splits accumulators of `accum_bytes` each for `workspace`.
int64_t depthwise_backward_weight_splits(const DepthwiseParams& p);

// grad_weight [Co][kH*kW], reduced in a fixed order (deterministic): every block sums a fixed slice
// of positions in a fixed tree, and a second pass sums the slices in order.
template <typename scalar_t>
cudaError_t depthwise_backward_weight(const DepthwiseParams& p, const scalar_t* grad_output,
                                      const scalar_t* input, scalar_t* grad_weight,
                                      void* workspace, cudaStream_t stream);

}  // namespace cuda
}  // namespace atrous

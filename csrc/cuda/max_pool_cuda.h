// Interface between the max-pool host code (max_pool.cpp) and its torch-free kernels.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "../common/pool_params.h"

namespace atrous {
namespace cuda {

// Forward: output and, with p.with_indices, indices (N, C, oH, oW) in p.layout.
template <typename scalar_t>
cudaError_t max_pool_forward(const PoolParams& p, const scalar_t* input, scalar_t* output,
                             int64_t* indices, cudaStream_t stream);

// Backward, the gather form: each grad_input element written once.
template <typename scalar_t>
cudaError_t max_pool_backward(const PoolParams& p, const scalar_t* grad_output,
                              const int64_t* indices, scalar_t* grad_input, cudaStream_t stream);

}  // namespace cuda
}  // namespace atrous

// Interface between the max-unpool host code (max_unpool.cpp) and its torch-free kernels.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "../common/unpool_params.h"

namespace atrous {
namespace cuda {

// flags[0]: smallest logical input position whose index is out of range (all ones: none);
// flags[1]: zero when an index in range lies outside its window, so the gather form does not
// apply (all ones: it applies). The caller sets both to all ones before the first launch.
//
// Gather form (p.gather): writes every output element once.
template <typename scalar_t>
cudaError_t unpool_gather(const UnpoolParams& p, const scalar_t* input, const int64_t* indices,
                          scalar_t* output, unsigned long long* flags, cudaStream_t stream);

// Scatter form: zero the output, then write every value at its index, the latest in its plane's
// row-major order winning (winner: out_numel 32-bit slots). With only_if_fallback it runs only
// when flags[1] says the gather form did not apply (decided on the device, no host sync).
template <typename scalar_t>
cudaError_t unpool_scatter(const UnpoolParams& p, const scalar_t* input, const int64_t* indices,
                           scalar_t* output, unsigned int* winner, unsigned long long* flags,
                           bool only_if_fallback, cudaStream_t stream);

// grad_input[i] = grad_output[plane, indices[i]] (zero for an index out of range).
template <typename scalar_t>
cudaError_t unpool_backward(const UnpoolParams& p, const scalar_t* grad_output,
                            const int64_t* indices, scalar_t* grad_input, cudaStream_t stream);

}  // namespace cuda
}  // namespace atrous

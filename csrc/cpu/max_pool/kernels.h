// The CPU max-pool kernels, one function per path of plan.h, templated on the scalar type; each
// fills the contiguous tensors that ops.cpp set up (csrc/common/pool_host.h) in the layout the plan
// was made for.
#pragma once

#include "../kernel_namespace.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

#include "../../common/pool_params.h"
#include "plan.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

// Forward: output (and, with p.with_indices, indices; else idx is null) from input.
template <typename scalar_t>
void max_pool_forward_nchw_rows(const PoolParams& p, const PoolPlan& plan, const scalar_t* in, scalar_t* out,
                                int64_t* idx);
template <typename scalar_t>
void max_pool_forward_nhwc(const PoolParams& p, const PoolPlan& plan, const scalar_t* in, scalar_t* out,
                           int64_t* idx);
template <typename scalar_t>
void max_pool_forward_generic(const PoolParams& p, const PoolPlan& plan, const scalar_t* in, scalar_t* out,
                              int64_t* idx);

// Backward: grad_input from grad_output and the forward's indices.
template <typename scalar_t>
void max_pool_backward_nchw(const PoolParams& p, const PoolPlan& plan, const scalar_t* grad_output,
                            const int64_t* indices, scalar_t* grad_input);
template <typename scalar_t>
void max_pool_backward_nhwc_windows(const PoolParams& p, const PoolPlan& plan, const scalar_t* grad_output,
                                    const int64_t* indices, scalar_t* grad_input);
template <typename scalar_t>
void max_pool_backward_scatter(const PoolParams& p, const PoolPlan& plan, const scalar_t* grad_output,
                               const int64_t* indices, scalar_t* grad_input);

// Explicit instantiation of a kernel file's entry points for every scalar type the ops take.
#define ATROUS_MAX_POOL_INSTANTIATE(X) X(float) X(double) X(c10::Half) X(c10::BFloat16)

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

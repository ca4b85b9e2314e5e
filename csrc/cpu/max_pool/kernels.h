// The CPU max-pool kernels, one function per path of plan.h; each fills tensors that ops.cpp set
// up (csrc/common/pool_host.h) in the layout the plan was made for.
#pragma once

#include <ATen/ATen.h>

#include "../../common/pool_params.h"
#include "plan.h"

namespace atrous {
namespace cpu {

// Forward: output (and, with p.with_indices, indices) from input.
void max_pool_forward_nchw_rows(const PoolParams& p, const PoolPlan& plan, const at::Tensor& input,
                                at::Tensor& output, at::Tensor& indices);
void max_pool_forward_nhwc(const PoolParams& p, const PoolPlan& plan, const at::Tensor& input,
                           at::Tensor& output, at::Tensor& indices);
void max_pool_forward_generic(const PoolParams& p, const PoolPlan& plan, const at::Tensor& input,
                              at::Tensor& output, at::Tensor& indices);

// Backward: grad_input from grad_output and the forward's indices.
void max_pool_backward_nchw(const PoolParams& p, const PoolPlan& plan,
                            const at::Tensor& grad_output, const at::Tensor& indices,
                            at::Tensor& grad_input);
void max_pool_backward_nhwc(const PoolParams& p, const PoolPlan& plan,
                            const at::Tensor& grad_output, const at::Tensor& indices,
                            at::Tensor& grad_input);

}  // namespace cpu
}  // namespace atrous

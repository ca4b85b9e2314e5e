// The CPU max-unpool kernels, templated on the scalar type and on the index type (int64, or int32:
// half the index bytes; every index is widened to int64 where it is compared, so no position is
// ever narrowed). Pointers are to the contiguous tensors ops.cpp set up (csrc/common/unpool_host.h).
#pragma once

#include "../kernel_namespace.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

#include "../../common/unpool_params.h"
#include "dispatch.h"  // kUnpoolNoBadIndex

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

// Fills out; returns the smallest logical input position whose index is out of range, or
// kUnpoolNoBadIndex.
template <typename scalar_t, typename index_t>
int64_t max_unpool_forward(const UnpoolParams& p, const scalar_t* in, const index_t* idx, scalar_t* out);

template <typename scalar_t, typename index_t>
void max_unpool_backward(const UnpoolParams& p, const scalar_t* grad_output, const index_t* idx,
                         scalar_t* grad_input);

// Explicit instantiation of a kernel file's entry points for every scalar type the ops take.
#define ATROUS_MAX_UNPOOL_INSTANTIATE(X) X(float) X(double) X(c10::Half) X(c10::BFloat16)

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

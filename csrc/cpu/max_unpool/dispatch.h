// The max-unpool kernels as the host code (ops.cpp) reaches them: a table of entry points per
// scalar type and index type, one table per CPU capability (table.cpp fills it from kernels.h), and
// active_kMaxUnpoolKernels(), the table of the capability in use (../capability.h).
#pragma once

#include <cstdint>
#include <limits>

#include "../../common/unpool_params.h"
#include "../capability.h"

namespace atrous {
namespace cpu {

// What the forward returns when every index is in range.
constexpr int64_t kUnpoolNoBadIndex = std::numeric_limits<int64_t>::max();

// What each entry point computes: kernels.h (max_unpool_forward, max_unpool_backward), by index type.
template <typename T>
struct MaxUnpoolKernels {
  int64_t (*forward_i64)(const UnpoolParams&, const T*, const int64_t*, T*);
  int64_t (*forward_i32)(const UnpoolParams&, const T*, const int32_t*, T*);
  void (*backward_i64)(const UnpoolParams&, const T*, const int64_t*, T*);
  void (*backward_i32)(const UnpoolParams&, const T*, const int32_t*, T*);
};

using MaxUnpoolKernelTable = PerScalarType<MaxUnpoolKernels>;

ATROUS_CPU_KERNEL_TABLE(MaxUnpoolKernelTable, kMaxUnpoolKernels)

}  // namespace cpu
}  // namespace atrous

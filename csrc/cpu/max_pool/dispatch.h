// The max-pool kernels as the host code (ops.cpp) reaches them: a table of entry points per scalar
// type, one table per CPU capability (table.cpp fills it from kernels.h), and
// active_kMaxPoolKernels(), the table of the capability in use (../capability.h).
#pragma once

#include <cstdint>

#include "../../common/pool_params.h"
#include "../capability.h"
#include "plan.h"

namespace atrous {
namespace cpu {

// What each entry point computes: kernels.h, where they are declared under the same names.
template <typename T>
struct MaxPoolKernels {
  void (*forward_nchw_rows)(const PoolParams&, const PoolPlan&, const T*, T*, int64_t*);
  void (*forward_nhwc)(const PoolParams&, const PoolPlan&, const T*, T*, int64_t*);
  void (*forward_generic)(const PoolParams&, const PoolPlan&, const T*, T*, int64_t*);
  void (*backward_nchw)(const PoolParams&, const PoolPlan&, const T*, const int64_t*, T*);
  void (*backward_nhwc_windows)(const PoolParams&, const PoolPlan&, const T*, const int64_t*, T*);
  void (*backward_scatter)(const PoolParams&, const PoolPlan&, const T*, const int64_t*, T*);
};

using MaxPoolKernelTable = PerScalarType<MaxPoolKernels>;

ATROUS_CPU_KERNEL_TABLE(MaxPoolKernelTable, kMaxPoolKernels)

}  // namespace cpu
}  // namespace atrous

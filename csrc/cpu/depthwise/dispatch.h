// The depthwise kernels as the host code (ops.cpp) reaches them: a table of entry points per
// scalar type, one table per CPU capability (table.cpp fills it from kernels.h), and
// active_kDepthwiseKernels(), the table of the capability in use (../capability.h).
#pragma once

#include "../../common/depthwise_params.h"
#include "../capability.h"
#include "plan.h"

namespace atrous {
namespace cpu {

// What each entry point computes: kernels.h, where they are declared under the same names.
template <typename T>
struct DepthwiseKernels {
  void (*forward_nchw)(const DepthwiseParams&, const DwForwardPlan&, const T*, const T*, const T*, T*);
  void (*forward_nhwc)(const DepthwiseParams&, const T*, const T*, const T*, T*);
  void (*forward_nhwc_rows)(const DepthwiseParams&, bool, int64_t, const T*, const T*, const T*, T*);
  void (*backward_input_nchw)(const DepthwiseParams&, const T*, const T*, T*);
  void (*backward_input_nchw_channel_tiles)(const DepthwiseParams&, const ChannelTilePlan&, const T*, const T*,
                                            T*);
  void (*backward_input_nhwc)(const DepthwiseParams&, const T*, const T*, T*);
  void (*backward_input_nhwc_phases)(const DepthwiseParams&, const DwBackwardInputPlan&, const T*, const T*, T*);
  void (*backward_weight_nchw)(const DepthwiseParams&, const T*, const T*, T*, T*);
  void (*backward_weight_nchw_channel_tiles)(const DepthwiseParams&, const ChannelTilePlan&, const T*, const T*,
                                             T*);
  void (*backward_weight_nhwc)(const DepthwiseParams&, const T*, const T*, T*, T*);
  void (*backward_weight_nhwc_rows)(const DepthwiseParams&, bool, int64_t, const T*, const T*, T*);
  void (*backward_input_weight_nhwc)(const DepthwiseParams&, const DepthwiseParams&, const T*, const T*,
                                     const T*, T*, T*, T*);
  void (*backward_bias_nchw)(const DepthwiseParams&, const T*, T*);
  void (*backward_bias_nhwc)(const DepthwiseParams&, const T*, T*);
};

using DepthwiseKernelTable = PerScalarType<DepthwiseKernels>;

ATROUS_CPU_KERNEL_TABLE(DepthwiseKernelTable, kDepthwiseKernels)

}  // namespace cpu
}  // namespace atrous

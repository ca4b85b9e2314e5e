// The CPU depthwise kernels, one function per path of plan.h, templated on the scalar type and
// instantiated for float, double, Half and BFloat16 in their own files. Pointers are to
// contiguous tensors in the layout the plan was made for (csrc/common/depthwise_host.h sets
// them up); the weight is [C*m][kH][kW], bias and grad_bias [C*m] (null: none).
#pragma once

#include "../kernel_namespace.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "../../common/depthwise_params.h"
#include "plan.h"

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

// NCHW, prepared rows (forward_nchw.cpp: the paths kNchwSweep, kNchwFlat, kNchwRows) and channel
// tiles (nchw_channel_tiles.cpp).
template <typename scalar_t>
void forward_nchw(const DepthwiseParams& p, const DwForwardPlan& plan, const scalar_t* in,
                  const scalar_t* weight, const scalar_t* bias, scalar_t* out);
template <typename scalar_t>
void backward_input_nchw(const DepthwiseParams& p, const scalar_t* go, const scalar_t* weight, scalar_t* gi);
// With gb (else null), also the bias gradient, in backward_bias_nchw's summation order.
template <typename scalar_t>
void backward_weight_nchw(const DepthwiseParams& p, const scalar_t* go, const scalar_t* in, scalar_t* gw,
                          scalar_t* gb);
template <typename scalar_t>
void backward_bias_nchw(const DepthwiseParams& p, const scalar_t* go, scalar_t* gb);

template <typename scalar_t>
void forward_nchw_channel_tiles(const DepthwiseParams& p, const ChannelTilePlan& plan, const scalar_t* in,
                                const scalar_t* weight, const scalar_t* bias, scalar_t* out);
template <typename scalar_t>
void backward_input_nchw_channel_tiles(const DepthwiseParams& p, const ChannelTilePlan& plan,
                                       const scalar_t* go, const scalar_t* weight, scalar_t* gi);
template <typename scalar_t>
void backward_weight_nchw_channel_tiles(const DepthwiseParams& p, const ChannelTilePlan& plan,
                                        const scalar_t* go, const scalar_t* in, scalar_t* gw);

// channels_last (forward_nhwc.cpp, backward_nhwc.cpp).
template <typename scalar_t>
void forward_nhwc(const DepthwiseParams& p, const scalar_t* in, const scalar_t* weight, const scalar_t* bias,
                  scalar_t* out);
// m = 1 and a geometry row_passes.h serves (nhwc_rows.cpp).
// prefetch: the plan's choice (plan.cpp: streams) to prefetch the rows the next output row reads;
// column_blocks: the channel blocks a wide row's passes (a dilated row's wide phases') sweep
// column by column (plan.cpp);
// block_group: channel blocks per task of the weight gradient, 0 for tasks of row bands (plan.cpp).
template <typename scalar_t>
void forward_nhwc_rows(const DepthwiseParams& p, bool prefetch, int64_t column_blocks, const scalar_t* in,
                       const scalar_t* weight, const scalar_t* bias, scalar_t* out);
template <typename scalar_t>
void backward_weight_nhwc_rows(const DepthwiseParams& p, bool prefetch, int64_t block_group, const scalar_t* go,
                               const scalar_t* in, scalar_t* gw);
// m > 1 (backward_nhwc.cpp).
template <typename scalar_t>
void backward_input_nhwc(const DepthwiseParams& p, const scalar_t* go, const scalar_t* weight, scalar_t* gi);
// m = 1, by phases of the input columns (nhwc_phases.cpp), the plan's column_block (1 to 8) columns
// of a phase at a time, or its pairs of pixels (plan.cpp).
template <typename scalar_t>
void backward_input_nhwc_phases(const DepthwiseParams& p, const DwBackwardInputPlan& plan, const scalar_t* go,
                                const scalar_t* weight, scalar_t* gi);
template <typename scalar_t>
void backward_weight_nhwc(const DepthwiseParams& p, const scalar_t* go, const scalar_t* in, scalar_t* gw,
                          scalar_t* gb);
// grad_input by the flipped forward t (q: the op's params) with the weight and bias gradients, in
// one pass over grad_output; bit for bit what the separate kernels give.
template <typename scalar_t>
void backward_input_weight_nhwc(const DepthwiseParams& q, const DepthwiseParams& t, const scalar_t* go,
                                const scalar_t* in, const scalar_t* flipped_weight, scalar_t* gi, scalar_t* gw,
                                scalar_t* gb);
template <typename scalar_t>
void backward_bias_nhwc(const DepthwiseParams& p, const scalar_t* go, scalar_t* gb);

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY

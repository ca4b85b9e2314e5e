// Host-side argument checks and set-up for the max-pool ops, shared by the CPU and CUDA backends
// (and by direct torch.ops callers, who bypass the Python checks). Every check runs before any
// output is allocated.
#pragma once

#include <ATen/ATen.h>

#include "depthwise_host.h"  // layout_of, in_layout, check_float_dtype, memory_format_of
#include "pool_params.h"

namespace atrous {

// The window geometry of one max-pool, checked as torch checks it (pool_check_shape).
inline void set_pool_geometry(PoolParams* p, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                              at::IntArrayRef padding, at::IntArrayRef dilation) {
  TORCH_CHECK(kernel_size.size() == 2 && stride.size() == 2 && padding.size() == 2 &&
                  dilation.size() == 2,
              "atrous.max_pool2d: kernel_size, stride, padding and dilation must have 2 elements, "
              "got ", kernel_size, ", ", stride, ", ", padding, ", ", dilation);
  const int64_t big = int64_t(1) << 31;
  for (int i = 0; i < 2; ++i) {
    TORCH_CHECK(kernel_size[i] >= 1 && kernel_size[i] < big,
                "atrous.max_pool2d: kernel_size must be in [1, 2^31), got ", kernel_size);
    TORCH_CHECK(stride[i] >= 1 && stride[i] < big,
                "atrous.max_pool2d: stride must be in [1, 2^31), got ", stride);
    TORCH_CHECK(dilation[i] >= 1 && dilation[i] < big,
                "atrous.max_pool2d: dilation must be in [1, 2^31), got ", dilation);
    // torch's bound: half the kernel size, whatever the dilation.
    TORCH_CHECK(padding[i] >= 0 && padding[i] <= kernel_size[i] / 2,
                "atrous.max_pool2d: padding must be in [0, half the kernel size], got padding ",
                padding, " for kernel_size ", kernel_size);
  }
  p->kernel_h = kernel_size[0];
  p->kernel_w = kernel_size[1];
  p->stride_h = stride[0];
  p->stride_w = stride[1];
  p->pad_h = padding[0];
  p->pad_w = padding[1];
  p->dil_h = dilation[0];
  p->dil_w = dilation[1];
}

// Sizes and geometry of a max-pool of an (N, C, H, W) input; the output size must be at least 1.
inline PoolParams make_pool_params(at::IntArrayRef input_sizes, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                   at::IntArrayRef dilation, bool ceil_mode) {
  TORCH_CHECK(input_sizes.size() == 4, "atrous.max_pool2d: input must be 4-D (N, C, H, W), got ",
              input_sizes);
  PoolParams p;
  set_pool_geometry(&p, kernel_size, stride, padding, dilation);
  p.batch = input_sizes[0];
  p.channels = input_sizes[1];
  p.in_h = input_sizes[2];
  p.in_w = input_sizes[3];
  TORCH_CHECK(p.channels >= 1 && p.in_h >= 1 && p.in_w >= 1,
              "atrous.max_pool2d: input must have non-zero channels, height and width (only the "
              "batch may be empty), got ", input_sizes);
  p.out_h = pool_out_size(p.in_h, p.kernel_h, p.stride_h, p.pad_h, p.dil_h, ceil_mode);
  p.out_w = pool_out_size(p.in_w, p.kernel_w, p.stride_w, p.pad_w, p.dil_w, ceil_mode);
  TORCH_CHECK(p.out_h >= 1 && p.out_w >= 1, "atrous.max_pool2d: given input size ", input_sizes,
              ", the calculated output size (", p.out_h, "x", p.out_w, ") is too small");
  return p;
}

struct PoolSetup {
  PoolParams p;
  at::Tensor input, output, indices;  // indices: undefined without with_indices
};

inline PoolSetup setup_max_pool(const at::Tensor& input, at::IntArrayRef kernel_size,
                                at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, bool ceil_mode, bool with_indices) {
  check_float_dtype(input, "input");
  PoolSetup s;
  s.p = make_pool_params(input.sizes(), kernel_size, stride, padding, dilation, ceil_mode);
  s.p.layout = layout_of(input);
  s.p.with_indices = with_indices;
  s.input = in_layout(input, s.p.layout);
  const auto fmt = memory_format_of(s.p.layout);
  const std::vector<int64_t> shape{s.p.batch, s.p.channels, s.p.out_h, s.p.out_w};
  s.output = at::empty(shape, input.options().memory_format(fmt));
  s.indices = with_indices ? at::empty(shape, input.options().dtype(at::kLong).memory_format(fmt))
                           : at::empty({0}, input.options().dtype(at::kLong));
  return s;
}

struct PoolBackwardSetup {
  PoolParams p;
  at::Tensor grad_output, indices, grad_input;
};

// grad_output and indices (N, C, oH, oW) of a pool of an input of `input_size`; the layout is the
// indices' (the forward's, so grad_input comes out in the input's layout), grad_output is read in it.
inline PoolBackwardSetup setup_max_pool_backward(const at::Tensor& grad_output,
                                                 const at::Tensor& indices,
                                                 at::IntArrayRef input_size,
                                                 at::IntArrayRef kernel_size,
                                                 at::IntArrayRef stride, at::IntArrayRef padding,
                                                 at::IntArrayRef dilation, bool ceil_mode) {
  check_float_dtype(grad_output, "grad_output");
  TORCH_CHECK(indices.scalar_type() == at::kLong, "atrous.max_pool2d_backward: indices must be "
              "int64, got ", indices.scalar_type());
  TORCH_CHECK(indices.device() == grad_output.device(), "atrous.max_pool2d_backward: indices "
              "must be on grad_output's device (", grad_output.device(), "), got ",
              indices.device());
  PoolBackwardSetup s;
  s.p = make_pool_params(input_size, kernel_size, stride, padding, dilation, ceil_mode);
  const std::vector<int64_t> out_shape{s.p.batch, s.p.channels, s.p.out_h, s.p.out_w};
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(out_shape) &&
                  indices.sizes() == at::IntArrayRef(out_shape),
              "atrous.max_pool2d_backward: grad_output ", grad_output.sizes(), " and indices ",
              indices.sizes(), " must both have the output's shape ", out_shape);
  s.p.layout = layout_of(indices);
  s.grad_output = in_layout(grad_output, s.p.layout);
  s.indices = in_layout(indices, s.p.layout);
  s.grad_input = at::empty(input_size,
                           grad_output.options().memory_format(memory_format_of(s.p.layout)));
  return s;
}

}  // namespace atrous

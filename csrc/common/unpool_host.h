// Host-side argument checks and set-up for the max-unpool ops, shared by the CPU and CUDA backends.
#pragma once

#include <ATen/ATen.h>

#include "depthwise_host.h"  // layout_of, in_layout, check_float_dtype, memory_format_of
#include "unpool_params.h"

namespace atrous {

// The sizes and layout of one max-unpool: the (N, C, H, W) values or indices `t` and an
// out_h x out_w output plane.
inline void set_unpool_dims(UnpoolParams* p, const at::Tensor& t, int64_t out_h, int64_t out_w) {
  p->batch = t.size(0);
  p->channels = t.size(1);
  p->in_h = t.size(2);
  p->in_w = t.size(3);
  p->out_h = out_h;
  p->out_w = out_w;
  p->layout = layout_of(t);
}

// int64 indices, or int32 (the CPU kernels read them as they are; CUDA widens them first, see
// as_int64_indices).
inline void check_index_dtype(const at::Tensor& indices) {
  TORCH_CHECK(indices.scalar_type() == at::kLong || indices.scalar_type() == at::kInt,
              "atrous: indices must be int64 or int32, got ", indices.scalar_type());
}

// The indices as int64 (a copy for int32), for kernels that read int64 only.
inline at::Tensor as_int64_indices(const at::Tensor& indices) {
  return indices.scalar_type() == at::kInt ? indices.to(at::kLong) : indices;
}

struct UnpoolSetup {
  UnpoolParams p;
  at::Tensor input, indices, output;
};

inline UnpoolSetup setup_max_unpool(const at::Tensor& input, const at::Tensor& indices,
                                    at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                    at::IntArrayRef padding, at::IntArrayRef output_size) {
  check_float_dtype(input, "input");
  check_index_dtype(indices);
  TORCH_CHECK(input.dim() == 4, "atrous: input must be 4-D (N, C, H, W), got sizes ", input.sizes());
  TORCH_CHECK(indices.sizes() == input.sizes(), "atrous: indices must have the input's shape ",
              input.sizes(), ", got ", indices.sizes());
  TORCH_CHECK(indices.device() == input.device(), "atrous: indices must be on the input's device (",
              input.device(), "), got ", indices.device());
  TORCH_CHECK(kernel_size.size() == 2 && stride.size() == 2 && padding.size() == 2 &&
                  output_size.size() == 2,
              "atrous: kernel_size, stride, padding and output_size must have 2 elements");
  for (int i = 0; i < 2; ++i) {
    TORCH_CHECK(kernel_size[i] >= 1 && stride[i] >= 1 && padding[i] >= 0 && output_size[i] >= 0,
                "atrous: invalid max_unpool2d geometry: kernel_size ", kernel_size, ", stride ",
                stride, ", padding ", padding, ", output_size ", output_size);
  }
  UnpoolSetup s;
  UnpoolParams& p = s.p;
  set_unpool_dims(&p, input, output_size[0], output_size[1]);
  p.kernel_h = kernel_size[0];
  p.kernel_w = kernel_size[1];
  p.stride_h = stride[0];
  p.stride_w = stride[1];
  p.pad_h = padding[0];
  p.pad_w = padding[1];
  // (The padding bound keeps every region non-empty: max-pool's own padding is <= kernel / 2.)
  p.gather = p.stride_h >= p.kernel_h && p.stride_w >= p.kernel_w &&
             p.out_h >= unpool_default_size(p.in_h, p.kernel_h, p.stride_h, p.pad_h) &&
             p.out_w >= unpool_default_size(p.in_w, p.kernel_w, p.stride_w, p.pad_w) &&
             p.pad_h < std::min(p.stride_h, p.kernel_h) && p.pad_w < std::min(p.stride_w, p.kernel_w) &&
             p.in_h > 0 && p.in_w > 0;
  s.input = in_layout(input, p.layout);
  s.indices = in_layout(indices, p.layout);
  s.output = at::empty({p.batch, p.channels, p.out_h, p.out_w},
                       input.options().memory_format(memory_format_of(p.layout)));
  return s;
}

// The error for the index at `logical_pos` ((n, c, h, w) in NCHW order) being out of range, naming
// the value, its position and the valid range.
[[noreturn]] inline void throw_bad_index(const UnpoolParams& p, const at::Tensor& indices,
                                         int64_t logical_pos) {
  const int64_t w = logical_pos % p.in_w, h = (logical_pos / p.in_w) % p.in_h;
  const int64_t c = (logical_pos / (p.in_w * p.in_h)) % p.channels;
  const int64_t n = logical_pos / (p.in_w * p.in_h * p.channels);
  const int64_t value = indices[n][c][h][w].item<int64_t>();
  TORCH_CHECK_INDEX(false, "atrous.max_unpool2d: index ", value, " at input position (n=", n,
                    ", c=", c, ", h=", h, ", w=", w, ") is out of range [0, ", p.out_h * p.out_w,
                    ") for an output plane of ", p.out_h, "x", p.out_w);
}

struct UnpoolBackwardSetup {
  UnpoolParams p;
  at::Tensor grad_output, indices, grad_input;
};

inline UnpoolBackwardSetup setup_max_unpool_backward(const at::Tensor& grad_output,
                                                     const at::Tensor& indices) {
  check_float_dtype(grad_output, "grad_output");
  check_index_dtype(indices);
  TORCH_CHECK(indices.dim() == 4 && grad_output.dim() == 4 &&
                  grad_output.size(0) == indices.size(0) && grad_output.size(1) == indices.size(1),
              "atrous: grad_output ", grad_output.sizes(), " does not match indices ",
              indices.sizes());
  TORCH_CHECK(indices.device() == grad_output.device(),
              "atrous: indices must be on grad_output's device");
  UnpoolBackwardSetup s;
  UnpoolParams& p = s.p;
  set_unpool_dims(&p, indices, grad_output.size(2), grad_output.size(3));
  s.indices = in_layout(indices, p.layout);
  s.grad_output = in_layout(grad_output, p.layout);
  s.grad_input = at::empty(indices.sizes(),
                           grad_output.options().memory_format(memory_format_of(p.layout)));
  return s;
}

}  // namespace atrous

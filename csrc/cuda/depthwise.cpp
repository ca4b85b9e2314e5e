// CUDA host side of the depthwise ops: argument checks (shared with the CPU backend), device guard,
// current stream, and dispatch to the torch-free kernels in depthwise_kernels.cu.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <array>
#include <tuple>

#include "../common/depthwise_host.h"
#include "depthwise_cuda.h"

namespace atrous {
namespace {

// The kernels take c10's scalar types (at::Half is c10::Half, at::BFloat16 is c10::BFloat16).
template <typename scalar_t>
const scalar_t* ptr(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<scalar_t>() : nullptr;
}

// NHWC kernels read the weight as [kH*kW][Co] so that consecutive channels are adjacent.
at::Tensor weight_for(const at::Tensor& weight, Layout layout) {
  if (layout == Layout::kNCHW) return weight.contiguous();
  return weight.flatten(1).t().contiguous();
}

void check_cuda(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), "atrous: ", name, " must be a CUDA tensor, got ", t.device());
}

at::Tensor depthwise_conv2d_cuda(const at::Tensor& input, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_cuda(input, "input");
  c10::cuda::CUDAGuard guard(input.device());
  auto s = setup_depthwise_forward(input, weight, bias, stride, padding, dilation);
  if (s.output.numel() == 0) return s.output;
  const at::Tensor w = weight_for(s.weight, s.p.layout);
  auto stream = c10::cuda::getCurrentCUDAStream(input.device().index()).stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "atrous_dw_fwd",
                                  [&] {
    C10_CUDA_CHECK(cuda::depthwise_forward<scalar_t>(s.p, ptr<scalar_t>(s.input),
                                                     ptr<scalar_t>(w), ptr<scalar_t>(s.bias),
                                                     s.output.mutable_data_ptr<scalar_t>(),
                                                     stream));
  });
  return s.output;
}

at::Tensor depthwise_conv2d_backward_input_cuda(const at::Tensor& grad_output,
                                                const at::Tensor& weight,
                                                at::IntArrayRef input_size, at::IntArrayRef stride,
                                                at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_cuda(grad_output, "grad_output");
  c10::cuda::CUDAGuard guard(grad_output.device());
  auto s = setup_depthwise_backward_input(grad_output, weight, input_size, stride, padding,
                                          dilation);
  if (s.grad_input.numel() == 0) return s.grad_input;
  auto stream = c10::cuda::getCurrentCUDAStream(grad_output.device().index()).stream();
  DepthwiseParams t;
  if (flipped_forward_params(s.p, &t)) {
    // Unit stride: the forward kernels on grad_output with the flipped kernel.
    const at::Tensor w = weight_for(s.weight.flip({2, 3}), t.layout);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(),
                                    "atrous_dw_bwd_input", [&] {
      C10_CUDA_CHECK(cuda::depthwise_forward<scalar_t>(
          t, ptr<scalar_t>(s.grad_output), ptr<scalar_t>(w), nullptr,
          s.grad_input.mutable_data_ptr<scalar_t>(), stream));
    });
    return s.grad_input;
  }
  const at::Tensor w = weight_for(s.weight, s.p.layout);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(),
                                  "atrous_dw_bwd_input", [&] {
    C10_CUDA_CHECK(cuda::depthwise_backward_input<scalar_t>(
        s.p, ptr<scalar_t>(s.grad_output), ptr<scalar_t>(w),
        s.grad_input.mutable_data_ptr<scalar_t>(), stream));
  });
  return s.grad_input;
}

at::Tensor depthwise_conv2d_backward_weight_cuda(const at::Tensor& grad_output,
                                                 const at::Tensor& input,
                                                 at::IntArrayRef weight_size,
                                                 at::IntArrayRef stride, at::IntArrayRef padding,
                                                 at::IntArrayRef dilation) {
  check_cuda(input, "input");
  c10::cuda::CUDAGuard guard(input.device());
  auto s = setup_depthwise_backward_weight(grad_output, input, weight_size, stride, padding,
                                           dilation);
  if (s.p.batch == 0) return s.grad_weight.zero_();
  const int64_t splits = cuda::depthwise_backward_weight_splits(s.p);
  const auto acc_dtype = input.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor workspace = at::empty({s.grad_weight.numel() * splits}, input.options().dtype(acc_dtype));
  auto stream = c10::cuda::getCurrentCUDAStream(input.device().index()).stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                                  "atrous_dw_bwd_weight", [&] {
    C10_CUDA_CHECK(cuda::depthwise_backward_weight<scalar_t>(
        s.p, ptr<scalar_t>(s.grad_output), ptr<scalar_t>(s.input),
        s.grad_weight.mutable_data_ptr<scalar_t>(), workspace.data_ptr(), stream));
  });
  return s.grad_weight;
}

// A channel sum: ATen's reduction (float accumulation, a fixed reduction order).
at::Tensor depthwise_conv2d_backward_bias_cuda(const at::Tensor& grad_output) {
  check_cuda(grad_output, "grad_output");
  c10::cuda::CUDAGuard guard(grad_output.device());
  auto s = setup_depthwise_backward_bias(grad_output);
  const auto acc = grad_output.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return grad_output.sum({0, 2, 3}, /*keepdim=*/false, acc).to(grad_output.scalar_type());
}

// The gradients output_mask asks for (an empty tensor for each other one): the kernels above, one
// after the other (on the GPU the bias sum is a separate reduction).
std::tuple<at::Tensor, at::Tensor, at::Tensor> depthwise_conv2d_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    std::array<bool, 3> mask) {
  check_cuda(input, "input");
  check_float_dtype(input, "input");
  check_same_device_dtype(input, "input", weight, "weight");
  // Outputs must not alias: a fresh empty tensor for each gradient not asked for.
  auto none = [&] { return at::empty({0}, input.options()); };
  // Shapes and geometry checked before any kernel runs, whatever the mask.
  const DepthwiseParams p = make_depthwise_params(input.sizes(), weight.sizes(), stride, padding,
                                                  dilation);
  check_grad_output_shape(p, grad_output);
  check_same_device_dtype(input, "input", grad_output, "grad_output");
  at::Tensor gi = mask[0] ? depthwise_conv2d_backward_input_cuda(grad_output, weight, input.sizes(),
                                                                 stride, padding, dilation)
                          : none();
  at::Tensor gw = mask[1] ? depthwise_conv2d_backward_weight_cuda(grad_output, input, weight.sizes(),
                                                                  stride, padding, dilation)
                          : none();
  at::Tensor gb = mask[2] ? depthwise_conv2d_backward_bias_cuda(grad_output) : none();
  return {gi, gw, gb};
}

}  // namespace

TORCH_LIBRARY_IMPL(atrous, CUDA, m) {
  m.impl("depthwise_conv2d", &depthwise_conv2d_cuda);
  m.impl("depthwise_conv2d_backward", &depthwise_conv2d_backward_cuda);
}

}  // namespace atrous

// The one TORCH_LIBRARY for atrous: every op's schema, the autocast kernels, and build information.
// Backends add their kernels with TORCH_LIBRARY_IMPL in csrc/cpu and csrc/cuda, and csrc/autograd.cpp
// the autograd of the four ops users call; fake kernels, and the autograd of the backward ops (for
// double backward), are registered from Python (python/atrous/_ops.py, _separable.py).
//
// Conventions shared by the depthwise ops:
//   stride   = [sH, sW]            (>= 1)
//   padding  = [pH0, pW0, pH1, pW1] (begin and end padding of each axis, >= 0)
//   dilation = [dH, dW]            (>= 1)
// Outputs are channels_last when the (grad) input is channels_last-contiguous and not also
// NCHW-contiguous, else NCHW-contiguous.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/library.h>
#include <torch/version.h>

#include <sstream>
#include <string>
#include <vector>

#include "autograd.h"
#include "cpu/capability.h"

#ifndef ATROUS_VERSION
#define ATROUS_VERSION "0.0.0+unknown"
#endif
#ifndef ATROUS_CUDA_ARCH_LIST
#define ATROUS_CUDA_ARCH_LIST ""
#endif
#ifndef ATROUS_CPU_ARCH
#define ATROUS_CPU_ARCH ""
#endif

#define ATROUS_STR2(x) #x
#define ATROUS_STR(x) ATROUS_STR2(x)

namespace atrous {
namespace {

// key=value lines, parsed by atrous.build_info(). Raises if $ATROUS_CPU_CAPABILITY asks for a
// capability that cannot be used (cpu/capability.h).
std::string build_info() {
  std::ostringstream s;
  s << "version=" << ATROUS_VERSION << "\n";
  s << "torch=" << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR << "." << TORCH_VERSION_PATCH
    << "\n";
#ifdef ATROUS_WITH_CUDA
  s << "cuda=1\n";
  s << "cuda_version=" << ATROUS_STR(ATROUS_CUDA_VERSION) << "\n";
  s << "cuda_arch_list=" << ATROUS_CUDA_ARCH_LIST << "\n";
#else
  s << "cuda=0\n";
  s << "cuda_version=\n";
  s << "cuda_arch_list=\n";
#endif
  s << "cpu_capabilities=" << cpu::capability_names(cpu::built_capabilities(), ",") << "\n";
  s << "cpu_capabilities_supported=" << cpu::capability_names(cpu::supported_capabilities(), ",") << "\n";
  s << "cpu_capability=" << cpu::capability_name(cpu::active_capability()) << "\n";
  s << "cpu_arch=" << ATROUS_CPU_ARCH << "\n";
  s << "cpu_vendor=" << cpu::cpu_vendor() << "\n";
#if defined(__clang__)
  s << "compiler=clang " << __clang_version__ << "\n";
#elif defined(__GNUC__)
  s << "compiler=gcc " << __VERSION__ << "\n";
#else
  s << "compiler=unknown\n";
#endif
  return s.str();
}

std::string choose_cpu_capability(const std::string& requested, const std::vector<std::string>& supported) {
  std::vector<cpu::Capability> caps;
  for (const std::string& name : supported)
    for (cpu::Capability c : cpu::built_capabilities())
      if (name == cpu::capability_name(c)) caps.push_back(c);
  return cpu::capability_name(cpu::choose_capability(requested, caps));
}

// Under autocast the depthwise convolution runs in the autocast dtype, as F.conv2d does (conv2d is
// on both the CPU and the CUDA lower-precision lists).
template <c10::DispatchKey Key, c10::DeviceType Device>
at::Tensor depthwise_conv2d_autocast(const at::Tensor& input, const at::Tensor& weight,
                                     const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                     at::IntArrayRef padding, at::IntArrayRef dilation) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(Key);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("atrous::depthwise_conv2d", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         const std::optional<at::Tensor>&, at::IntArrayRef,
                                         at::IntArrayRef, at::IntArrayRef)>();
  const auto dtype = at::autocast::get_autocast_dtype(Device);
  return op.call(at::autocast::cached_cast(dtype, input, Device),
                 at::autocast::cached_cast(dtype, weight, Device),
                 at::autocast::cached_cast(dtype, bias, Device), stride, padding, dilation);
}

}  // namespace

TORCH_LIBRARY(atrous, m) {
  m.def(
      "depthwise_conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[4] padding, "
      "int[2] dilation) -> Tensor");
  // The gradients (grad_input, grad_weight, grad_bias) that output_mask asks for, as ATen's
  // convolution_backward; each one not asked for is an empty tensor. The backend decides which
  // passes serve the mask; a gradient's value never depends on which others are asked for.
  m.def(
      "depthwise_conv2d_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, "
      "int[4] padding, int[2] dilation, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
  // The CPU kernels these arguments get, "forward=<path> backward_input=<path>
  // backward_weight=<path>" (csrc/cpu/depthwise/plan.h; for tests).
  m.def(
      "_depthwise_conv2d_cpu_plan(Tensor input, Tensor weight, int[2] stride, int[4] padding, "
      "int[2] dilation) -> str");
  // Fused depthwise-separable convolution: F.conv2d(act(depthwise_conv2d(input, dw_weight,
  // dw_bias, ...)), pw_weight, pw_bias) with activation 'none', 'relu' or 'relu6', the
  // intermediate never stored. Its backward gives (grad_input, grad_dw_weight, grad_dw_bias,
  // grad_pw_weight, grad_pw_bias) for output_mask (each one not asked for an empty tensor),
  // recomputing the intermediate from the input.
  m.def(
      "separable_conv2d(Tensor input, Tensor dw_weight, Tensor pw_weight, Tensor? dw_bias, Tensor? pw_bias, "
      "int[2] stride, int[4] padding, int[2] dilation, str activation) -> Tensor");
  m.def(
      "separable_conv2d_backward(Tensor grad_output, Tensor input, Tensor dw_weight, Tensor pw_weight, "
      "Tensor? dw_bias, int[2] stride, int[4] padding, int[2] dilation, str activation, bool[5] output_mask) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // The CPU tiling and depthwise kernels these arguments get (csrc/cpu/separable/plan.h; for tests).
  m.def(
      "_separable_conv2d_cpu_plan(Tensor input, Tensor dw_weight, Tensor pw_weight, int[2] stride, "
      "int[4] padding, int[2] dilation) -> str");
  // Max-unpool: output_size = [oH, oW]; kernel_size, stride and padding describe the windows
  // the indices come from (they choose the gather form; see csrc/common/unpool_params.h).
  m.def(
      "max_unpool2d(Tensor input, Tensor indices, int[2] kernel_size, int[2] stride, "
      "int[2] padding, int[2] output_size, bool validate_indices=True) -> Tensor");
  m.def("max_unpool2d_backward(Tensor grad_output, Tensor indices) -> Tensor");
  // Max-pool (csrc/common/pool_params.h): values and, with with_indices, the int64 flat index of
  // each maximum in its input plane (an empty tensor without). The backward gathers grad_output
  // into an input of input_size = [N, C, H, W] at the indices.
  m.def(
      "max_pool2d(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, "
      "int[2] dilation, bool ceil_mode, bool with_indices) -> (Tensor, Tensor)");
  m.def(
      "max_pool2d_backward(Tensor grad_output, Tensor indices, int[4] input_size, "
      "int[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation, bool ceil_mode) -> Tensor");
  // The CPU kernels a max-pool of `input` would run, "forward=<path> backward=<path>" (for tests).
  m.def(
      "_max_pool2d_cpu_plan(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, "
      "int[2] dilation, bool ceil_mode) -> str");
  m.def("_build_info() -> str", &build_info);
  // How many backward ops the autograd of the ops above has called straight below autograd so far
  // (csrc/autograd.cpp; for tests).
  m.def("_direct_backward_calls() -> int", &direct_backward_call_count);
  // The CPU capability that `requested` (empty: the best) gives on a CPU that runs `supported`,
  // or the error ATROUS_CPU_CAPABILITY=requested raises there (cpu/capability.h; for tests).
  m.def("_choose_cpu_capability(str requested, str[] supported) -> str", &choose_cpu_capability);
}

TORCH_LIBRARY_IMPL(atrous, AutocastCPU, m) {
  m.impl("depthwise_conv2d",
         &depthwise_conv2d_autocast<c10::DispatchKey::AutocastCPU, c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(atrous, AutocastCUDA, m) {
  m.impl("depthwise_conv2d",
         &depthwise_conv2d_autocast<c10::DispatchKey::AutocastCUDA, c10::DeviceType::CUDA>);
}

}  // namespace atrous

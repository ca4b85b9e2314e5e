// Autograd of the four ops users call (depthwise_conv2d, separable_conv2d, max_pool2d,
// max_unpool2d), registered at the Autograd key for every backend: each forward runs the op below
// autograd and saves what its backward op needs; each backward calls that backward op for the
// gradients asked for.
//
// Why C++ and not torch.library.register_autograd: a Python autograd kernel costs about 30 us a
// forward and 70 us a forward+backward of Python (measured: a tiny max_pool2d's forward+backward
// 99 us against torch's 28), as much as a small layer's whole work; these cost a few us. The
// backward ops' own autograd (double backward) stays in Python (python/atrous/_ops.py): a second
// derivative is rare and builds a graph anyway.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "autograd.h"

#include <array>
#include <atomic>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace atrous {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using at::Tensor;
using at::IntArrayRef;

template <typename Sig>
c10::TypedOperatorHandle<Sig> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

// Whether a backward op may run straight below autograd: nothing would record its call (no graph
// is being built: create_graph is off), and nothing above autograd wants to see it: plain eager
// tensors (no tensor subclass or torch.compile's tracing tensors, which carry the Python key; no
// functorch wrappers) and no mode pushed on the dispatcher (functorch transforms, Python modes).
bool below_autograd_is_safe(std::initializer_list<const Tensor*> tensors) {
  if (at::GradMode::is_enabled()) return false;
  // Eager mode includes these two; functorch transforms and Python modes add their own keys.
  static const c10::DispatchKeySet kEager({c10::DispatchKey::BackendSelect, c10::DispatchKey::ADInplaceOrView});
  if (!(c10::impl::tls_local_dispatch_key_set().included_ - kEager).empty()) return false;
  static const c10::DispatchKeySet kAbove({c10::DispatchKey::Python, c10::DispatchKey::PythonTLSSnapshot,
                                           c10::DispatchKey::FuncTorchGradWrapper, c10::DispatchKey::FuncTorchBatched,
                                           c10::DispatchKey::Functionalize});
  for (const Tensor* t : tensors)
    if (t->defined() && t->key_set().has_any(kAbove)) return false;
  return true;
}

// op(args...) straight to the kernel below autograd.
template <typename Sig, typename... Args>
auto call_below(const c10::TypedOperatorHandle<Sig>& op, Args&&... args) {
  at::AutoDispatchBelowADInplaceOrView guard;
  return op.call(std::forward<Args>(args)...);
}

std::atomic<int64_t> direct_backward_calls{0};  // direct_backward_call_count (autograd.h)

// Calls a backward op: below autograd where that is safe (above), else through the dispatcher, so
// that a graph built by create_graph=True records it for a second derivative.
template <typename Sig, typename... Args>
auto call_backward(const c10::TypedOperatorHandle<Sig>& op, std::initializer_list<const Tensor*> tensors,
                   Args&&... args) {
  if (below_autograd_is_safe(tensors)) {
    direct_backward_calls.fetch_add(1, std::memory_order_relaxed);
    return call_below(op, std::forward<Args>(args)...);
  }
  return op.call(std::forward<Args>(args)...);
}

std::vector<int64_t> saved_ints(AutogradContext* ctx, const char* key) {
  return ctx->saved_data[key].toIntVector();
}
Tensor if_asked(bool asked, const Tensor& t) { return asked ? t : Tensor(); }

// Whether autograd records a call of these tensors (undefined ones allowed): if not, the wrappers
// below call the op below autograd themselves, without the node a Function::apply would build
// (measured, 1 thread: a tiny max_pool2d op call 7.0 -> 5.1 us, a depthwise one 6.4 -> 5.0).
bool records(std::initializer_list<const Tensor*> tensors) {
  if (!at::GradMode::is_enabled()) return false;
  for (const Tensor* t : tensors)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}
const Tensor& or_undefined(const std::optional<Tensor>& t) {
  static const Tensor undefined;
  return t.has_value() ? *t : undefined;
}

// --- depthwise_conv2d ---------------------------------------------------------------------------

using DepthwiseSig = Tensor(const Tensor&, const Tensor&, const std::optional<Tensor>&, IntArrayRef, IntArrayRef,
                            IntArrayRef);
using DepthwiseBackwardSig = std::tuple<Tensor, Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&,
                                                                IntArrayRef, IntArrayRef, IntArrayRef,
                                                                std::array<bool, 3>);
const auto& depthwise_op() {
  static const auto op = find_op<DepthwiseSig>("atrous::depthwise_conv2d");
  return op;
}

struct DepthwiseConv2d : torch::autograd::Function<DepthwiseConv2d> {
  static Tensor forward(AutogradContext* ctx, const Tensor& input, const Tensor& weight,
                        const std::optional<Tensor>& bias, IntArrayRef stride, IntArrayRef padding,
                        IntArrayRef dilation) {
    ctx->saved_data["geometry"] = concat({stride, padding, dilation});
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    ctx->save_for_backward({input, weight});
    return call_below(depthwise_op(), input, weight, bias, stride, padding, dilation);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = find_op<DepthwiseBackwardSig>("atrous::depthwise_conv2d_backward");
    const auto saved = ctx->get_saved_variables();
    const Tensor &input = saved[0], &weight = saved[1];
    const std::array<bool, 3> mask = {ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                      ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)};
    variable_list out(6);
    if (!mask[0] && !mask[1] && !mask[2]) return out;
    const auto g = saved_ints(ctx, "geometry");  // stride (2), padding (4), dilation (2)
    const IntArrayRef all(g);
    auto [gi, gw, gb] = call_backward(op, {&grads[0], &input, &weight}, grads[0], input, weight, all.slice(0, 2),
                                      all.slice(2, 4), all.slice(6, 2), mask);
    out[0] = if_asked(mask[0], gi);
    out[1] = if_asked(mask[1], gw);
    out[2] = if_asked(mask[2], gb);
    return out;
  }

  static std::vector<int64_t> concat(std::initializer_list<IntArrayRef> parts) {
    std::vector<int64_t> v;
    for (IntArrayRef p : parts) v.insert(v.end(), p.begin(), p.end());
    return v;
  }
};

Tensor depthwise_conv2d_autograd(const Tensor& input, const Tensor& weight, const std::optional<Tensor>& bias,
                                 IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation) {
  if (!records({&input, &weight, &or_undefined(bias)}))
    return call_below(depthwise_op(), input, weight, bias, stride, padding, dilation);
  return DepthwiseConv2d::apply(input, weight, bias, stride, padding, dilation);
}

// --- separable_conv2d ---------------------------------------------------------------------------

using SeparableSig = Tensor(const Tensor&, const Tensor&, const Tensor&, const std::optional<Tensor>&,
                            const std::optional<Tensor>&, IntArrayRef, IntArrayRef, IntArrayRef, c10::string_view);
using SeparableBackwardSig = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const std::optional<Tensor>&, IntArrayRef,
    IntArrayRef, IntArrayRef, c10::string_view, std::array<bool, 5>);
const auto& separable_op() {
  static const auto op = find_op<SeparableSig>("atrous::separable_conv2d");
  return op;
}

// Keeps the input and the weights only: the backward op recomputes the intermediate tile by tile.
struct SeparableConv2d : torch::autograd::Function<SeparableConv2d> {
  static Tensor forward(AutogradContext* ctx, const Tensor& input, const Tensor& dw_weight, const Tensor& pw_weight,
                        const std::optional<Tensor>& dw_bias, const std::optional<Tensor>& pw_bias,
                        IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, c10::string_view activation) {
    ctx->saved_data["geometry"] = DepthwiseConv2d::concat({stride, padding, dilation});
    ctx->saved_data["activation"] = std::string(activation);
    const bool has_dw_bias = dw_bias.has_value() && dw_bias->defined();
    ctx->saved_data["has_pw_bias"] = pw_bias.has_value() && pw_bias->defined();
    ctx->save_for_backward({input, dw_weight, pw_weight, has_dw_bias ? *dw_bias : Tensor()});
    return call_below(separable_op(), input, dw_weight, pw_weight, dw_bias, pw_bias, stride, padding, dilation,
                      activation);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = find_op<SeparableBackwardSig>("atrous::separable_conv2d_backward");
    const auto saved = ctx->get_saved_variables();
    const Tensor &input = saved[0], &dw_weight = saved[1], &pw_weight = saved[2], &dw_bias = saved[3];
    // The op's arguments are (input, dw_weight, pw_weight, dw_bias, pw_bias); the backward op's
    // outputs (input, dw_weight, dw_bias, pw_weight, pw_bias).
    // needs_input_grad counts the tensors given only: pw_bias is the fourth without dw_bias.
    const int64_t pw_bias_edge = dw_bias.defined() ? 4 : 3;
    const std::array<bool, 5> mask = {ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                      dw_bias.defined() && ctx->needs_input_grad(3), ctx->needs_input_grad(2),
                                      ctx->saved_data["has_pw_bias"].toBool() && ctx->needs_input_grad(pw_bias_edge)};
    variable_list out(9);
    if (!(mask[0] || mask[1] || mask[2] || mask[3] || mask[4])) return out;
    const auto g = saved_ints(ctx, "geometry");
    const IntArrayRef all(g);
    const std::string activation = ctx->saved_data["activation"].toStringRef();
    const std::optional<Tensor> bias = dw_bias.defined() ? std::optional<Tensor>(dw_bias) : std::nullopt;
    auto [gi, gdw, gdb, gpw, gpb] =
        call_backward(op, {&grads[0], &input, &dw_weight, &pw_weight, &dw_bias}, grads[0], input, dw_weight,
                      pw_weight, bias, all.slice(0, 2), all.slice(2, 4), all.slice(6, 2), activation, mask);
    out[0] = if_asked(mask[0], gi);
    out[1] = if_asked(mask[1], gdw);
    out[2] = if_asked(mask[3], gpw);
    out[3] = if_asked(mask[2], gdb);
    out[4] = if_asked(mask[4], gpb);
    return out;
  }
};

Tensor separable_conv2d_autograd(const Tensor& input, const Tensor& dw_weight, const Tensor& pw_weight,
                                 const std::optional<Tensor>& dw_bias, const std::optional<Tensor>& pw_bias,
                                 IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                                 c10::string_view activation) {
  if (!records({&input, &dw_weight, &pw_weight, &or_undefined(dw_bias), &or_undefined(pw_bias)}))
    return call_below(separable_op(), input, dw_weight, pw_weight, dw_bias, pw_bias, stride, padding, dilation,
                      activation);
  return SeparableConv2d::apply(input, dw_weight, pw_weight, dw_bias, pw_bias, stride, padding, dilation,
                                activation);
}

// --- max_pool2d ---------------------------------------------------------------------------------

using PoolSig = std::tuple<Tensor, Tensor>(const Tensor&, IntArrayRef, IntArrayRef, IntArrayRef, IntArrayRef, bool,
                                           bool);
using PoolBackwardSig = Tensor(const Tensor&, const Tensor&, IntArrayRef, IntArrayRef, IntArrayRef, IntArrayRef,
                               IntArrayRef, bool);
const auto& pool_op() {
  static const auto op = find_op<PoolSig>("atrous::max_pool2d");
  return op;
}

// Keeps the indices, or without them the input, to find them again in the backward.
struct MaxPool2d : torch::autograd::Function<MaxPool2d> {
  static variable_list forward(AutogradContext* ctx, const Tensor& input, IntArrayRef kernel_size,
                               IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, bool ceil_mode,
                               bool with_indices) {
    // The indices get no gradient: without this autograd would fill a zero one for them at every
    // backward (0.4 ms for the ResNet stem at batch 8).
    ctx->set_materialize_grads(false);
    ctx->saved_data["geometry"] = DepthwiseConv2d::concat({input.sizes(), kernel_size, stride, padding, dilation});
    ctx->saved_data["ceil_mode"] = ceil_mode;
    ctx->saved_data["with_indices"] = with_indices;
    auto [out, indices] = call_below(pool_op(), input, kernel_size, stride, padding, dilation, ceil_mode, with_indices);
    ctx->save_for_backward({with_indices ? indices : input});
    ctx->mark_non_differentiable({indices});
    return {out, indices};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = find_op<PoolBackwardSig>("atrous::max_pool2d_backward");
    variable_list out(7);
    const Tensor& grad = grads[0];
    if (!ctx->needs_input_grad(0) || !grad.defined()) return out;
    const Tensor saved = ctx->get_saved_variables()[0];
    const auto g = saved_ints(ctx, "geometry");  // input size (4), kernel, stride, padding, dilation (2 each)
    const IntArrayRef all(g), size = all.slice(0, 4), kernel = all.slice(4, 2), stride = all.slice(6, 2),
                      padding = all.slice(8, 2), dilation = all.slice(10, 2);
    const bool ceil_mode = ctx->saved_data["ceil_mode"].toBool();
    Tensor indices = saved;
    if (!ctx->saved_data["with_indices"].toBool())
      indices = std::get<1>(
          call_backward(pool_op(), {&saved}, saved, kernel, stride, padding, dilation, ceil_mode, true));
    out[0] = call_backward(op, {&grad, &indices}, grad, indices, size, kernel, stride, padding, dilation, ceil_mode);
    return out;
  }
};

std::tuple<Tensor, Tensor> max_pool2d_autograd(const Tensor& input, IntArrayRef kernel_size, IntArrayRef stride,
                                               IntArrayRef padding, IntArrayRef dilation, bool ceil_mode,
                                               bool with_indices) {
  if (!records({&input}))
    return call_below(pool_op(), input, kernel_size, stride, padding, dilation, ceil_mode, with_indices);
  auto r = MaxPool2d::apply(input, kernel_size, stride, padding, dilation, ceil_mode, with_indices);
  return {r[0], r[1]};
}

// --- max_unpool2d -------------------------------------------------------------------------------

using UnpoolSig = Tensor(const Tensor&, const Tensor&, IntArrayRef, IntArrayRef, IntArrayRef, IntArrayRef, bool);
using UnpoolBackwardSig = Tensor(const Tensor&, const Tensor&);
const auto& unpool_op() {
  static const auto op = find_op<UnpoolSig>("atrous::max_unpool2d");
  return op;
}

struct MaxUnpool2d : torch::autograd::Function<MaxUnpool2d> {
  static Tensor forward(AutogradContext* ctx, const Tensor& input, const Tensor& indices, IntArrayRef kernel_size,
                        IntArrayRef stride, IntArrayRef padding, IntArrayRef output_size, bool validate_indices) {
    ctx->save_for_backward({indices});
    return call_below(unpool_op(), input, indices, kernel_size, stride, padding, output_size, validate_indices);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = find_op<UnpoolBackwardSig>("atrous::max_unpool2d_backward");
    variable_list out(7);
    if (!ctx->needs_input_grad(0)) return out;
    const Tensor indices = ctx->get_saved_variables()[0];
    out[0] = call_backward(op, {&grads[0], &indices}, grads[0], indices);
    return out;
  }
};

Tensor max_unpool2d_autograd(const Tensor& input, const Tensor& indices, IntArrayRef kernel_size, IntArrayRef stride,
                             IntArrayRef padding, IntArrayRef output_size, bool validate_indices) {
  if (!records({&input}))
    return call_below(unpool_op(), input, indices, kernel_size, stride, padding, output_size, validate_indices);
  return MaxUnpool2d::apply(input, indices, kernel_size, stride, padding, output_size, validate_indices);
}

}  // namespace

int64_t direct_backward_call_count() { return direct_backward_calls.load(std::memory_order_relaxed); }

TORCH_LIBRARY_IMPL(atrous, Autograd, m) {
  m.impl("depthwise_conv2d", &depthwise_conv2d_autograd);
  m.impl("separable_conv2d", &separable_conv2d_autograd);
  m.impl("max_pool2d", &max_pool2d_autograd);
  m.impl("max_unpool2d", &max_unpool2d_autograd);
}

}  // namespace atrous

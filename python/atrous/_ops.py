"""Fake (meta) kernels and autograd for the ops registered in csrc/registration.cpp.

The backward of every op runs registered ops, and the backward ops are themselves differentiable
(each is linear in each argument), so double backward works too.
"""

import torch

ops = torch.ops.atrous

_PLAIN = (torch.Tensor, torch.nn.Parameter)
_below_autograd = torch._C._AutoDispatchBelowAutograd  # a name of our own, for tests to count calls


def call(op, tensors, *args):
    """op(*args), straight to its kernel where autograd has nothing to record (the functional API's
    calls, and the backward ops' calls from a backward that does not build a graph).

    A call through the dispatcher's Autograd key runs the Python kernel that register_autograd
    installs, and that kernel, when no gradient is needed, only re-enters the op below autograd:
    about 5 us of Python (measured: 11.2 us for a whole max_pool2d call of a tiny input against
    5.8 us below autograd), much of a small layer's time. This makes the same call from here, for
    plain tensors (`tensors`: the op's tensor arguments, None allowed) in eager mode. Under
    torch.compile, a functorch transform or a tensor subclass, the op goes through the dispatcher
    as it is.
    """
    # is_compiling first: Dynamo folds it and traces none of the rest.
    if (not torch.compiler.is_compiling()
            and not (torch.is_grad_enabled() and torch._C._any_requires_grad(*tensors))
            and torch._C._functorch.peek_interpreter_stack() is None
            and all(t is None or type(t) in _PLAIN for t in tensors)):
        with _below_autograd():
            return op(*args)
    return op(*args)


def output_memory_format(t):
    """The layout rule of the C++ kernels (csrc/common/depthwise_host.h: layout_of)."""
    if not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def conv_out_size(size, pad_begin, pad_end, kernel, stride, dilation):
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def depthwise_out_hw(in_h, in_w, kernel_h, kernel_w, stride, padding, dilation):
    out_h = conv_out_size(in_h, padding[0], padding[2], kernel_h, stride[0], dilation[0])
    out_w = conv_out_size(in_w, padding[1], padding[3], kernel_w, stride[1], dilation[1])
    return out_h, out_w


def _check_geometry(stride, padding, dilation):
    torch._check(len(stride) == 2 and all(s >= 1 for s in stride), lambda: f"bad stride {stride}")
    torch._check(len(padding) == 4 and all(p >= 0 for p in padding), lambda: f"bad padding {padding}")
    torch._check(len(dilation) == 2 and all(d >= 1 for d in dilation), lambda: f"bad dilation {dilation}")


def _depthwise_out_shape(input_size, weight_size, stride, padding, dilation):
    _check_geometry(stride, padding, dilation)
    n, c, h, w = input_size
    co, one, kh, kw = weight_size
    torch._check(one == 1 and co % c == 0, lambda: f"bad weight shape {tuple(weight_size)} for {c} channels")
    oh, ow = depthwise_out_hw(h, w, kh, kw, stride, padding, dilation)
    torch._check(oh >= 1 and ow >= 1, lambda: "the dilated kernel is larger than the padded input")
    return (n, co, oh, ow)


@torch.library.register_fake("atrous::depthwise_conv2d")
def _depthwise_conv2d_fake(input, weight, bias, stride, padding, dilation):
    torch._check(input.dim() == 4 and weight.dim() == 4, lambda: "input and weight must be 4-D")
    torch._check(input.dtype == weight.dtype, lambda: "input and weight dtypes differ")
    shape = _depthwise_out_shape(input.shape, weight.shape, stride, padding, dilation)
    if bias is not None:
        torch._check(bias.shape == (shape[1],), lambda: f"bias must have shape ({shape[1]},)")
    return input.new_empty(shape).contiguous(memory_format=output_memory_format(input))


@torch.library.register_fake("atrous::depthwise_conv2d_backward")
def _depthwise_backward_fake(grad_output, input, weight, stride, padding, dilation, output_mask):
    torch._check(input.dim() == 4 and weight.dim() == 4, lambda: "input and weight must be 4-D")
    shape = _depthwise_out_shape(input.shape, weight.shape, stride, padding, dilation)
    torch._check(tuple(grad_output.shape) == shape, lambda: f"grad_output must have shape {shape}")
    gi = (grad_output.new_empty(input.shape).contiguous(memory_format=output_memory_format(grad_output))
          if output_mask[0] else input.new_empty((0,)))
    gw = input.new_empty(weight.shape if output_mask[1] else (0,))
    gb = input.new_empty((weight.shape[0],) if output_mask[2] else (0,))
    return gi, gw, gb


def depthwise_backward(grad, input, weight, stride, padding, dilation, mask):
    """(grad_input, grad_weight, grad_bias), None for each gradient `mask` does not ask for."""
    if not any(mask):
        return None, None, None
    out = call(ops.depthwise_conv2d_backward.default, (grad, input, weight), grad, input, weight, stride, padding,
               dilation, list(mask))
    return tuple(t if m else None for t, m in zip(out, mask))


# --- autograd: forward ---------------------------------------------------------------------------

def _dw_setup(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation = inputs
    ctx.geometry = (stride, padding, dilation)
    ctx.has_bias = bias is not None
    ctx.save_for_backward(input, weight)


def _dw_backward(ctx, grad):
    input, weight = ctx.saved_tensors
    mask = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2])
    gi, gw, gb = depthwise_backward(grad, input, weight, *ctx.geometry, mask)
    return gi, gw, gb, None, None, None


torch.library.register_autograd("atrous::depthwise_conv2d", _dw_backward, setup_context=_dw_setup)


# --- autograd: the backward op (for double backward) --------------------------------------------
# Each gradient is linear in grad_output and in its other operand:
#   grad_input  = convT(grad_output, weight): adjoints conv(ggi, weight) for grad_output and the
#                 weight gradient of (grad_output, ggi) for weight;
#   grad_weight = BW(grad_output, input): adjoints conv(input, ggw) for grad_output and grad_input
#                 of (grad_output, ggw) for input;
#   grad_bias   = sum of grad_output: its adjoint broadcasts ggb.

def _dwb_setup(ctx, inputs, output):
    grad_output, input, weight, stride, padding, dilation, mask = inputs
    ctx.geometry = (stride, padding, dilation)
    ctx.mask = list(mask)
    ctx.save_for_backward(grad_output, input, weight)


def _dwb_backward(ctx, ggi, ggw, ggb):
    grad_output, input, weight = ctx.saved_tensors
    geometry = ctx.geometry
    ggi, ggw, ggb = (g if m else None for g, m in zip((ggi, ggw, ggb), ctx.mask))
    d_go = d_x = d_w = None
    if ctx.needs_input_grad[0]:
        terms = []
        if ggi is not None:
            terms.append(ops.depthwise_conv2d(ggi, weight, None, *geometry))
        if ggw is not None:
            terms.append(ops.depthwise_conv2d(input, ggw, None, *geometry))
        if ggb is not None:
            terms.append(ggb.reshape(1, -1, 1, 1).expand(grad_output.shape))
        for t in terms:
            d_go = t if d_go is None else d_go + t
    if ctx.needs_input_grad[1] and ggw is not None:
        d_x = depthwise_backward(grad_output, input, ggw, *geometry, (True, False, False))[0]
    if ctx.needs_input_grad[2] and ggi is not None:
        d_w = depthwise_backward(grad_output, ggi, weight, *geometry, (False, True, False))[1]
    return d_go, d_x, d_w, None, None, None, None


torch.library.register_autograd("atrous::depthwise_conv2d_backward", _dwb_backward, setup_context=_dwb_setup)


# --- max_unpool2d --------------------------------------------------------------------------------

@torch.library.register_fake("atrous::max_unpool2d")
def _max_unpool2d_fake(input, indices, kernel_size, stride, padding, output_size, validate_indices=True):
    torch._check(input.dim() == 4 and indices.shape == input.shape, lambda: "indices must have the input's shape")
    torch._check(indices.dtype in (torch.int64, torch.int32), lambda: "indices must be int64 or int32")
    shape = (input.shape[0], input.shape[1], output_size[0], output_size[1])
    return input.new_empty(shape).contiguous(memory_format=output_memory_format(input))


@torch.library.register_fake("atrous::max_unpool2d_backward")
def _max_unpool2d_backward_fake(grad_output, indices):
    torch._check(grad_output.dim() == 4 and indices.dim() == 4, lambda: "grad_output and indices must be 4-D")
    return grad_output.new_empty(indices.shape).contiguous(memory_format=output_memory_format(indices))


def _unpool_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])


def _unpool_backward(ctx, grad):
    indices, = ctx.saved_tensors
    gi = call(ops.max_unpool2d_backward.default, (grad, indices), grad, indices) if ctx.needs_input_grad[0] else None
    return gi, None, None, None, None, None, None


torch.library.register_autograd("atrous::max_unpool2d", _unpool_backward, setup_context=_unpool_setup)


# --- max_pool2d ----------------------------------------------------------------------------------

def pool_out_size(size, kernel, stride, pad, dilation, ceil_mode):
    """One axis of the output, as torch's pooling_output_shape (csrc/common/pool_params.h)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _pool_out_shape(input_size, kernel_size, stride, padding, dilation, ceil_mode):
    n, c, h, w = input_size
    oh = pool_out_size(h, kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_out_size(w, kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode)
    torch._check(oh >= 1 and ow >= 1, lambda: f"max_pool2d output size {oh}x{ow} is too small")
    return (n, c, oh, ow)


@torch.library.register_fake("atrous::max_pool2d")
def _max_pool2d_fake(input, kernel_size, stride, padding, dilation, ceil_mode, with_indices):
    torch._check(input.dim() == 4, lambda: "input must be 4-D")
    shape = _pool_out_shape(input.shape, kernel_size, stride, padding, dilation, ceil_mode)
    fmt = output_memory_format(input)
    out = input.new_empty(shape).contiguous(memory_format=fmt)
    if with_indices:
        idx = input.new_empty(shape, dtype=torch.int64).contiguous(memory_format=fmt)
    else:
        idx = input.new_empty((0,), dtype=torch.int64)
    return out, idx


@torch.library.register_fake("atrous::max_pool2d_backward")
def _max_pool2d_backward_fake(grad_output, indices, input_size, kernel_size, stride, padding, dilation,
                              ceil_mode):
    shape = _pool_out_shape(input_size, kernel_size, stride, padding, dilation, ceil_mode)
    torch._check(tuple(grad_output.shape) == shape and tuple(indices.shape) == shape,
                 lambda: f"grad_output and indices must have shape {shape}")
    return grad_output.new_empty(input_size).contiguous(memory_format=output_memory_format(indices))


def _pool_setup(ctx, inputs, output):
    input, kernel_size, stride, padding, dilation, ceil_mode, with_indices = inputs
    # The indices (int64, twice the values' bytes) get no gradient: without this autograd would
    # fill a zero one for them at every backward (0.4 ms for the ResNet stem at batch 8).
    ctx.set_materialize_grads(False)
    ctx.geometry = (list(input.shape), kernel_size, stride, padding, dilation, ceil_mode)
    # The indices are all the backward needs; without them, the input to find them again.
    ctx.save_for_backward(output[1] if with_indices else input)
    ctx.with_indices = with_indices


def _pool_backward(ctx, grad, _grad_indices):
    saved, = ctx.saved_tensors
    input_size, kernel_size, stride, padding, dilation, ceil_mode = ctx.geometry
    gi = None
    if ctx.needs_input_grad[0] and grad is not None:
        indices = saved if ctx.with_indices else call(
            ops.max_pool2d.default, (saved,), saved, kernel_size, stride, padding, dilation, ceil_mode, True)[1]
        gi = call(ops.max_pool2d_backward.default, (grad, indices), grad, indices, input_size, kernel_size, stride,
                  padding, dilation, ceil_mode)
    return gi, None, None, None, None, None, None


torch.library.register_autograd("atrous::max_pool2d", _pool_backward, setup_context=_pool_setup)


# The backward is linear in grad_output: its adjoint reads the incoming gradient at the indices.

def _pool_bwd_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])


def _pool_bwd_backward(ctx, ggi):
    indices, = ctx.saved_tensors
    d_go = None
    if ctx.needs_input_grad[0]:
        n, c = indices.shape[:2]
        d_go = ggi.reshape(n, c, -1).gather(2, indices.reshape(n, c, -1)).reshape(indices.shape)
    return d_go, None, None, None, None, None, None, None


torch.library.register_autograd("atrous::max_pool2d_backward", _pool_bwd_backward,
                                setup_context=_pool_bwd_setup)

"""Fake (meta) kernels for the ops registered in csrc/registration.cpp, and the autograd of their
backward ops.

The autograd of the ops users call is csrc/autograd.cpp's (in C++: a Python autograd kernel costs
tens of us a call). Their backwards run the backward ops, which are themselves differentiable here
(each is linear in each argument), so double backward works too.
"""

import torch

ops = torch.ops.atrous

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
    out = ops.depthwise_conv2d_backward.default(grad, input, weight, stride, padding, dilation, list(mask))
    return tuple(t if m else None for t, m in zip(out, mask))


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

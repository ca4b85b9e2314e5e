"""Fake kernels of the fused separable convolution (csrc/registration.cpp), and its backward op's
autograd: double backward is not supported (it raises).

The op's own autograd is csrc/autograd.cpp's: it keeps only the input and the weights, and the
backward op recomputes the intermediate tile by tile."""

import torch

from ._ops import _depthwise_out_shape, output_memory_format

ops = torch.ops.atrous


def _out_shape(input, dw_weight, pw_weight, stride, padding, dilation):
    torch._check(input.dim() == 4 and dw_weight.dim() == 4 and pw_weight.dim() == 4,
                 lambda: "input, dw_weight and pw_weight must be 4-D")
    n, cm, oh, ow = _depthwise_out_shape(input.shape, dw_weight.shape, stride, padding, dilation)
    torch._check(pw_weight.shape[1] == cm and pw_weight.shape[2] == 1 and pw_weight.shape[3] == 1,
                 lambda: f"pw_weight must have shape (C_out, {cm}, 1, 1), got {tuple(pw_weight.shape)}")
    return (n, pw_weight.shape[0], oh, ow)


@torch.library.register_fake("atrous::separable_conv2d")
def _separable_fake(input, dw_weight, pw_weight, dw_bias, pw_bias, stride, padding, dilation, activation):
    torch._check(input.dtype == dw_weight.dtype == pw_weight.dtype, lambda: "input and weight dtypes differ")
    torch._check(activation in ("none", "relu", "relu6"), lambda: f"bad activation {activation!r}")
    shape = _out_shape(input, dw_weight, pw_weight, stride, padding, dilation)
    return input.new_empty(shape).contiguous(memory_format=output_memory_format(input))


@torch.library.register_fake("atrous::separable_conv2d_backward")
def _separable_backward_fake(grad_output, input, dw_weight, pw_weight, dw_bias, stride, padding, dilation,
                             activation, output_mask):
    shape = _out_shape(input, dw_weight, pw_weight, stride, padding, dilation)
    torch._check(tuple(grad_output.shape) == shape, lambda: f"grad_output must have shape {shape}")
    empty = (0,)
    gi = (input.new_empty(input.shape).contiguous(memory_format=output_memory_format(input))
          if output_mask[0] else input.new_empty(empty))
    gdw = input.new_empty(dw_weight.shape if output_mask[1] else empty)
    gdb = input.new_empty((dw_weight.shape[0],) if output_mask[2] else empty)
    gpw = input.new_empty(pw_weight.shape if output_mask[3] else empty)
    gpb = input.new_empty((pw_weight.shape[0],) if output_mask[4] else empty)
    return gi, gdw, gdb, gpw, gpb


def _backward_setup(ctx, inputs, output):
    pass


def _double_backward(ctx, *grads):
    raise NotImplementedError("atrous.separable_conv2d does not support double backward (create_graph=True)")


torch.library.register_autograd("atrous::separable_conv2d_backward", _double_backward,
                                setup_context=_backward_setup)

"""Functional API. Signatures mirror torch.nn.functional; every argument is checked here, before any
kernel runs, with a message that names the argument, the value given and what is allowed."""

import torch

from ._ops import depthwise_out_hw, output_memory_format, pool_out_size

# The ops are called by their one overload (`.default`): the packet's call resolves it on every call
# (some microseconds, much of a small layer's time).
ops = torch.ops.atrous

__all__ = ["depthwise_conv2d", "max_pool2d", "max_unpool2d", "separable_conv2d"]

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_MAX_INT = 2**31 - 1


def _pair(name, value, minimum):
    """An int or a pair of ints, each >= minimum and < 2^31, as a list of 2."""
    # The common forms first: this runs several times per call (0.5 us each the long way).
    if type(value) is int:
        if minimum <= value <= _MAX_INT:
            return [value, value]
    elif type(value) in (tuple, list) and len(value) == 2:
        a, b = value
        if type(a) is int and type(b) is int and minimum <= a <= _MAX_INT and minimum <= b <= _MAX_INT:
            return [a, b]
    return _checked_pair(name, value, minimum)


def _checked_pair(name, value, minimum):
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    try:
        vals = [value, value] if isinstance(value, int) else list(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(vals) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    for v in vals:
        if v < minimum or v > _MAX_INT:
            raise ValueError(f"{name} must be in [{minimum}, 2^31 - 1], got {value!r}")
    return vals


def _check_tensor(name, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32, float64, float16 or bfloat16, got {t.dtype}")


def _check_like(name, t, ref_name, ref):
    if t.device != ref.device:
        raise ValueError(f"{name} must be on the same device as {ref_name} ({ref.device}), got {t.device}")
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} must have the same dtype as {ref_name} ({ref.dtype}), got {t.dtype}")


def _check_input_rank(input):
    if input.dim() not in (3, 4):
        raise ValueError(
            f"input must be 3-D (C, H, W) or 4-D (N, C, H, W), got {input.dim()}-D with shape {tuple(input.shape)}")


def _resolve_padding(padding, kernel, stride, dilation):
    """Padding as [h_begin, w_begin, h_end, w_end]; 'same' pads one more at the end of an axis
    whose total padding is odd, as F.conv2d does."""
    if isinstance(padding, str):
        if padding == "valid":
            return [0, 0, 0, 0]
        if padding == "same":
            if stride != [1, 1]:
                raise ValueError(f"padding='same' is not supported for strided convolutions, got stride={stride}")
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            begin = [t // 2 for t in total]
            return begin + [t - b for t, b in zip(total, begin)]
        raise ValueError(f"padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
    p = _pair("padding", padding, 0)
    return p + p


def _check_depthwise(input, weight, bias, stride, padding, dilation, weight_name="weight", bias_name="bias"):
    _check_tensor("input", input)
    _check_tensor(weight_name, weight)
    _check_input_rank(input)
    _check_like(weight_name, weight, "input", input)
    batch = input.shape[0] if input.dim() == 4 else 1
    if input.shape[-3] == 0 or (batch > 0 and 0 in input.shape[-2:]):
        raise ValueError(
            "input must have non-zero channels, and non-zero height and width unless the batch is "
            f"empty, got shape {tuple(input.shape)}")
    channels = input.shape[-3]
    if weight.dim() != 4 or weight.shape[1] != 1 or weight.shape[0] == 0 or weight.shape[0] % channels:
        raise ValueError(
            f"{weight_name} must have shape (C*m, 1, kH, kW) with C = input channels = {channels} and m >= 1, "
            f"got {tuple(weight.shape)}")
    if weight.shape[2] == 0 or weight.shape[3] == 0:
        raise ValueError(f"{weight_name}'s kernel size must be positive, got shape {tuple(weight.shape)}")
    _check_bias(bias_name, bias, input, weight.shape[0])
    stride = _pair("stride", stride, 1)
    dilation = _pair("dilation", dilation, 1)
    kernel = [weight.shape[2], weight.shape[3]]
    pad = _resolve_padding(padding, kernel, stride, dilation)
    h, w = input.shape[-2], input.shape[-1]
    oh, ow = depthwise_out_hw(h, w, kernel[0], kernel[1], stride, pad, dilation)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"the dilated kernel ({(kernel[0] - 1) * dilation[0] + 1}x{(kernel[1] - 1) * dilation[1] + 1}, "
            f"from weight {tuple(weight.shape)} and dilation {tuple(dilation)}) is larger than the padded input "
            f"({h + pad[0] + pad[2]}x{w + pad[1] + pad[3]}, from input {tuple(input.shape)} and padding {padding!r})")
    return stride, pad, dilation


def _check_bias(name, bias, input, size):
    if bias is None:
        return
    if not isinstance(bias, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(bias).__name__}")
    _check_like(name, bias, "input", input)
    if tuple(bias.shape) != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {tuple(bias.shape)}")


def _native_layout(t):
    """The kernels read NCHW- and channels_last-contiguous tensors in place; any other strides are
    copied once, to channels_last when that is the layout they resemble (as torch picks the output
    format of F.conv2d), else to NCHW."""
    if t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last):
        return t
    fmt = torch._prims_common.suggest_memory_format(t)
    return t.contiguous(memory_format=fmt)


def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Depthwise (optionally dilated) 2-D convolution: the same as
    ``F.conv2d(input, weight, bias, stride, padding, dilation, groups=input.shape[-3])``.

    Args:
        input: (N, C, H, W) or unbatched (C, H, W); float32, float64, float16 or bfloat16.
        weight: (C*m, 1, kH, kW) for a depth multiplier m >= 1.
        bias: (C*m,) or None.
        stride, dilation: int or (h, w), each >= 1.
        padding: int or (h, w) >= 0, or 'same' (stride 1 only) or 'valid'.

    Returns (N, C*m, oH, oW) (or (C*m, oH, oW)) in the input's dtype and memory format.
    """
    stride, pad, dilation = _check_depthwise(input, weight, bias, stride, padding, dilation)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    x = _native_layout(x)
    out = ops.depthwise_conv2d.default(x, weight, bias, stride, pad, dilation)
    return out.squeeze(0) if unbatched else out


_ACTIVATIONS = {None: "none", "relu": "relu", "relu6": "relu6"}


def separable_conv2d(input, dw_weight, pw_weight, dw_bias=None, pw_bias=None, stride=1, padding=0, dilation=1,
                     activation=None):
    """Fused depthwise-separable 2-D convolution: the same as ::

        mid = F.conv2d(input, dw_weight, dw_bias, stride, padding, dilation, groups=C)
        out = F.conv2d(act(mid), pw_weight, pw_bias)

    with ``act`` the identity (``activation=None``), ``F.relu`` ('relu') or ``F.relu6`` ('relu6'),
    without ever storing ``mid``: it is computed tile by tile into a cache-sized buffer and consumed
    there, and the backward recomputes it from the input (autograd keeps only the input and the
    weights). The weight gradients are summed in a fixed order: deterministic, independent of the
    thread count. Double backward is not supported.

    Args:
        input: (N, C, H, W) or unbatched (C, H, W); float32, float64, float16 or bfloat16.
        dw_weight: (C*m, 1, kH, kW) for a depth multiplier m >= 1.
        pw_weight: (C_out, C*m, 1, 1).
        dw_bias: (C*m,) or None. pw_bias: (C_out,) or None.
        stride, dilation: int or (h, w), each >= 1 (of the depthwise convolution).
        padding: int or (h, w) >= 0, or 'same' (stride 1 only) or 'valid'.
        activation: None, 'relu' or 'relu6'.

    Returns (N, C_out, oH, oW) (or (C_out, oH, oW)) in the input's dtype and memory format.
    """
    stride, pad, dilation = _check_depthwise(input, dw_weight, dw_bias, stride, padding, dilation,
                                             "dw_weight", "dw_bias")
    _check_tensor("pw_weight", pw_weight)
    _check_like("pw_weight", pw_weight, "input", input)
    cm = dw_weight.shape[0]
    if pw_weight.dim() != 4 or pw_weight.shape[0] == 0 or pw_weight.shape[1] != cm or pw_weight.shape[2:] != (1, 1):
        raise ValueError(
            f"pw_weight must have shape (C_out, C*m, 1, 1) with C*m = dw_weight.shape[0] = {cm} and C_out >= 1 "
            f"(a 1x1 kernel), got {tuple(pw_weight.shape)}")
    _check_bias("pw_bias", pw_bias, input, pw_weight.shape[0])
    if not isinstance(activation, (str, type(None))) or activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be None, 'relu' or 'relu6', got {activation!r}")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    x = _native_layout(x)
    out = ops.separable_conv2d.default(x, dw_weight, pw_weight, dw_bias, pw_bias, stride, pad, dilation,
                                       _ACTIVATIONS[activation])
    return out.squeeze(0) if unbatched else out


def _unpool_output_size(input, kernel, stride, padding, output_size):
    """[oH, oW] as F.max_unpool2d computes and checks it."""
    default = [(input.shape[-2 + d] - 1) * stride[d] + kernel[d] - 2 * padding[d] for d in range(2)]
    if output_size is None:
        size = default
    else:
        try:
            size = [int(v) for v in output_size]
        except (TypeError, ValueError):
            raise TypeError(f"output_size must be a sequence of 2 or 4 ints, got {output_size!r}") from None
        if len(size) == 4:
            size = size[2:]
        if len(size) != 2:
            raise ValueError(
                f"output_size should be a sequence containing 2 or 4 elements, but it has a length of '{len(size)}'")
        for d in range(2):
            lo, hi = default[d] - stride[d], default[d] + stride[d]
            if not lo < size[d] < hi:
                raise ValueError(f'invalid output_size "{list(output_size)}" (dim {d} must be between {lo} and {hi})')
    if size[0] < 0 or size[1] < 0:
        raise ValueError(f"max_unpool2d's output size must not be negative, got {size} (input {tuple(input.shape)}, "
                         f"kernel_size {tuple(kernel)}, stride {tuple(stride)}, padding {tuple(padding)})")
    return size


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None, validate_indices=True):
    """Inverse of max-pooling: the same as ``F.max_unpool2d``, deterministic.

    Each value is written at its index (the flat position ``r * oW + q`` in its (n, c) output
    plane, as ``F.max_pool2d(..., return_indices=True)`` gives it); every other output element is
    zero. Where several values of a plane share an index, the one latest in the plane's row-major
    order wins, on every run and every device (torch leaves that undefined on CUDA).

    An index outside ``[0, oH * oW)`` raises IndexError, naming it, on the CPU and on CUDA (no
    device-side assert). On CUDA that check reads a flag back from the GPU, a host
    synchronisation; ``validate_indices=False`` skips it (then an invalid index is ignored, never
    written out of bounds), which CUDA graph capture requires. On the CPU the check is always made.
    An empty output plane (an output_size of 0) with values to place raises too, where torch
    returns the empty output unchecked.

    Args:
        input: (N, C, H, W) or (C, H, W); float32, float64, float16 or bfloat16.
        indices: int64, or int32 (read as they are on the CPU, the faster option there; widened to
            int64 on CUDA), the shape of ``input``.
        kernel_size, stride (default: kernel_size), padding: int or (h, w), of the pooling.
        output_size: (oH, oW) or (N, C, oH, oW), as F.max_unpool2d accepts it.
    """
    _check_tensor("input", input)
    if not isinstance(indices, torch.Tensor):
        raise TypeError(f"indices must be a torch.Tensor, got {type(indices).__name__}")
    if indices.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"indices must be int64 (or int32), got {indices.dtype}")
    _check_input_rank(input)
    if indices.shape != input.shape:
        raise ValueError(f"indices must have the input's shape {tuple(input.shape)}, got {tuple(indices.shape)}")
    if indices.device != input.device:
        raise ValueError(f"indices must be on the same device as input ({input.device}), got {indices.device}")
    if 0 in input.shape[-3:]:
        raise ValueError(
            "input must have non-zero channels, height and width (only the batch may be empty), "
            f"got shape {tuple(input.shape)}")
    kernel = _pair("kernel_size", kernel_size, 1)
    stride = kernel if stride is None else _pair("stride", stride, 1)
    padding = _pair("padding", padding, 0)
    size = _unpool_output_size(input, kernel, stride, padding, output_size)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    idx = indices.unsqueeze(0) if unbatched else indices
    x = _native_layout(x)
    # The kernels read values and indices in one layout: the input's.
    idx = idx.contiguous(memory_format=output_memory_format(x))
    out = ops.max_unpool2d.default(x, idx, kernel, stride, padding, size, bool(validate_indices))
    return out.squeeze(0) if unbatched else out


def _check_pool_geometry(input, kernel_size, stride, padding, dilation, ceil_mode):
    """kernel, stride, padding and dilation as F.max_pool2d checks them, and the output size."""
    kernel = _pair("kernel_size", kernel_size, 1)
    # torch takes stride=None or an empty stride as the kernel size.
    empty = isinstance(stride, (list, tuple)) and len(stride) == 0
    stride = kernel if stride is None or empty else _pair("stride", stride, 1)
    pad = _pair("padding", padding, 0)
    dilation = _pair("dilation", dilation, 1)
    for d in range(2):
        # torch's bound: half the kernel size, whatever the dilation.
        if pad[d] > kernel[d] // 2:
            raise ValueError(
                f"padding must be at most half the kernel size, got padding={padding!r} for "
                f"kernel_size={kernel_size!r} (at most {kernel[d] // 2} on axis {d})")
    h, w = input.shape[-2], input.shape[-1]
    oh = pool_out_size(h, kernel[0], stride[0], pad[0], dilation[0], bool(ceil_mode))
    ow = pool_out_size(w, kernel[1], stride[1], pad[1], dilation[1], bool(ceil_mode))
    if oh < 1 or ow < 1:
        raise ValueError(
            f"max_pool2d's output would be {oh}x{ow} for input {tuple(input.shape)}, kernel_size "
            f"{tuple(kernel)}, stride {tuple(stride)}, padding {tuple(pad)}, dilation {tuple(dilation)}: "
            "the output size must be at least 1x1")
    return kernel, stride, pad, dilation


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max-pooling: the same values and indices as ``F.max_pool2d`` with the same arguments.

    Indices (with ``return_indices=True``) are int64, each the flat position ``h * W + w`` of the
    maximum in its (n, c) input plane, as torch gives them: ties go to the first element of the
    window in row-major order, a NaN propagates (the last NaN of the window wins), and padding never
    wins, even against -inf. They feed :func:`atrous.max_unpool2d` and ``F.max_unpool2d`` unchanged.
    The gradient goes to each window's maximum; where windows overlap, an input sums the gradients
    of its windows in a fixed order (deterministic, independent of the thread count).

    Args:
        input: (N, C, H, W) or unbatched (C, H, W); float32, float64, float16 or bfloat16.
        kernel_size: int or (h, w), >= 1.
        stride: int or (h, w), >= 1; None (default) means kernel_size.
        padding: int or (h, w), at most half the kernel size (as torch allows).
        dilation: int or (h, w), >= 1.
        ceil_mode: size the output with ceil instead of floor, as torch does.
        return_indices: also return the indices.

    Returns the output (N, C, oH, oW) in the input's dtype and memory format, and with
    ``return_indices`` the indices in the same shape and memory format.
    """
    _check_tensor("input", input)
    _check_input_rank(input)
    if 0 in input.shape[-3:]:
        raise ValueError(
            "input must have non-zero channels, height and width (only the batch may be empty), "
            f"got shape {tuple(input.shape)}")
    kernel, stride, pad, dilation = _check_pool_geometry(input, kernel_size, stride, padding, dilation,
                                                         ceil_mode)
    # The backward needs the indices; without them it would pool again.
    with_indices = bool(return_indices) or (input.requires_grad and torch.is_grad_enabled())
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    x = _native_layout(x)
    out, idx = ops.max_pool2d.default(x, kernel, stride, pad, dilation, bool(ceil_mode), with_indices)
    if unbatched:
        out = out.squeeze(0)
        idx = idx.squeeze(0) if return_indices else idx
    return (out, idx) if return_indices else out

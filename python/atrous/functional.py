"""Functional API. Signatures mirror torch.nn.functional; every argument is checked here, before any
kernel runs, with a message that names the argument, the value given and what is allowed."""

import torch

from ._ops import depthwise_out_hw

__all__ = ["depthwise_conv2d"]

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_MAX_INT = 2**31 - 1


def _pair(name, value, minimum):
    """An int or a pair of ints, each >= minimum and < 2^31, as a list of 2."""
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


def _check_depthwise(input, weight, bias, stride, padding, dilation):
    _check_tensor("input", input)
    _check_tensor("weight", weight)
    if input.dim() not in (3, 4):
        raise ValueError(
            f"input must be 3-D (C, H, W) or 4-D (N, C, H, W), got {input.dim()}-D with shape {tuple(input.shape)}")
    _check_like("weight", weight, "input", input)
    if 0 in input.shape[-3:]:
        raise ValueError(
            "input must have non-zero channels, height and width (only the batch may be empty), "
            f"got shape {tuple(input.shape)}")
    channels = input.shape[-3]
    if weight.dim() != 4 or weight.shape[1] != 1 or weight.shape[0] == 0 or weight.shape[0] % channels:
        raise ValueError(
            f"weight must have shape (C*m, 1, kH, kW) with C = input channels = {channels} and m >= 1, "
            f"got {tuple(weight.shape)}")
    if weight.shape[2] == 0 or weight.shape[3] == 0:
        raise ValueError(f"weight's kernel size must be positive, got shape {tuple(weight.shape)}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
        _check_like("bias", bias, "input", input)
        if tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
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
    out = torch.ops.atrous.depthwise_conv2d(_native_layout(x), weight, bias, stride, pad, dilation)
    return out.squeeze(0) if unbatched else out


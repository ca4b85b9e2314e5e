"""Shared test helpers: layouts of an NCHW tensor, and the comparisons against the torch op."""

import torch
from torch.utils._python_dispatch import TorchDispatchMode

LAYOUTS = ["contiguous", "channels_last", "sliced", "transposed", "channels_last_sliced"]


def in_layout(x, layout):
    """The same values as x (N, C, H, W), held with the named strides."""
    if layout == "contiguous":
        return x.contiguous()
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "sliced":  # storage offset and a gap between columns
        big = torch.zeros(*x.shape[:-1], 2 * x.shape[-1] + 1, dtype=x.dtype, device=x.device)
        big[..., 1::2] = x
        return big[..., 1::2]
    if layout == "transposed":  # H and W swapped in memory
        return x.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "channels_last_sliced":
        big = torch.zeros(x.shape[0], x.shape[1] + 3, *x.shape[2:], dtype=x.dtype, device=x.device)
        big = big.contiguous(memory_format=torch.channels_last)
        big[:, 1:-2] = x
        return big[:, 1:-2]
    raise ValueError(layout)


def random_padding(rng, kernel, stride, dilation):
    """A random padding for a random-configuration test ('same' only with unit stride, 'valid', a
    pair or an int) and the smallest (H, W) the padded input admits for that kernel and dilation."""
    pick = rng.random()
    if pick < 0.15 and tuple(stride) == (1, 1):
        padding = "same"
    elif pick < 0.25:
        padding = "valid"
    elif pick < 0.6:
        padding = (rng.randint(0, 4), rng.randint(0, 4))
    else:
        padding = rng.randint(0, 3)
    pad = padding if isinstance(padding, tuple) else (padding, padding) if isinstance(padding, int) else (0, 0)
    need = [max(1, (kernel[i] - 1) * dilation[i] + 1 - 2 * pad[i]) for i in range(2)]
    return padding, need


def grads(out, inputs, grad_out):
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    return torch.autograd.grad(out, wanted, grad_out, allow_unused=False)


def assert_close_all(actual, expected, **kw):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **kw)


def latest_wins_reference(values, indices, out_h, out_w):
    """The documented semantics, one plane at a time in row-major order: the latest value wins."""
    n, c = values.shape[:2]
    out = torch.zeros(n, c, out_h * out_w, dtype=values.dtype)
    v = values.reshape(n, c, -1).cpu()
    idx = indices.reshape(n, c, -1).cpu()
    for a in range(n):
        for b in range(c):
            for i in range(v.shape[-1]):
                out[a, b, idx[a, b, i]] = v[a, b, i]
    return out.reshape(n, c, out_h, out_w)


class RecordOps(TorchDispatchMode):
    """Records (op, args) of every op dispatched while it is active."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append((func, args))
        return func(*args, **(kwargs or {}))

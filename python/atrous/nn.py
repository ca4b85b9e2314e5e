"""Modules: drop-in replacements for the torch.nn layers whose ops atrous implements."""

import math

import torch
from torch import nn

from . import functional as F

__all__ = ["DepthwiseConv2d", "SeparableConv2d", "MaxPool2d", "MaxUnpool2d", "FusedConv", "Absorbed"]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class DepthwiseConv2d(nn.Module):
    """Depthwise (optionally dilated) 2-D convolution.

    Its ``weight`` (in_channels * depth_multiplier, 1, kH, kW) and ``bias`` have the names and
    shapes of ``nn.Conv2d(in_channels, in_channels * depth_multiplier, kernel_size,
    groups=in_channels)``, so state_dicts load both ways, and it is initialised the same way.
    """

    def __init__(self, in_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 depth_multiplier=1, device=None, dtype=None):
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        if not isinstance(depth_multiplier, int) or depth_multiplier < 1:
            raise ValueError(f"depth_multiplier must be a positive int, got {depth_multiplier!r}")
        kernel_size = _pair(kernel_size)
        if len(kernel_size) != 2 or any(not isinstance(k, int) or k < 1 for k in kernel_size):
            raise ValueError(f"kernel_size must be a positive int or pair of ints, got {kernel_size!r}")
        self.in_channels = in_channels
        self.out_channels = in_channels * depth_multiplier
        self.depth_multiplier = depth_multiplier
        self.kernel_size = kernel_size
        self.stride = _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation = _pair(dilation)
        # Checks stride, padding and dilation as the functional form does.
        F._resolve_padding(self.padding, list(kernel_size), F._pair("stride", self.stride, 1),
                           F._pair("dilation", self.dilation, 1))
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(self.out_channels, 1, *kernel_size, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # As nn.Conv2d: kaiming-uniform weight, uniform bias in +-1/sqrt(fan_in).
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.kernel_size[0] * self.kernel_size[1]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_conv(cls, conv):
        """A DepthwiseConv2d that shares ``conv``'s parameters (no copy), for an nn.Conv2d that is
        depthwise: groups == in_channels, out_channels a multiple of it, zero padding."""
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"from_conv expects an nn.Conv2d, got {type(conv).__name__}")
        if conv.groups != conv.in_channels or conv.out_channels % conv.in_channels:
            raise ValueError(
                "from_conv expects a depthwise nn.Conv2d (groups == in_channels and out_channels a "
                f"multiple of in_channels), got in_channels={conv.in_channels}, "
                f"out_channels={conv.out_channels}, groups={conv.groups}")
        if conv.padding_mode != "zeros":
            raise ValueError(f"from_conv supports padding_mode='zeros' only, got {conv.padding_mode!r}")
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.in_channels = conv.in_channels
        module.out_channels = conv.out_channels
        module.depth_multiplier = conv.out_channels // conv.in_channels
        module.kernel_size = tuple(conv.kernel_size)
        module.stride = tuple(conv.stride)
        module.padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
        module.dilation = tuple(conv.dilation)
        module.weight = conv.weight
        if conv.bias is not None:
            module.bias = conv.bias
        else:
            module.register_parameter("bias", None)
        return module

    def forward(self, input):
        return F.depthwise_conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        s = (f"{self.in_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding!r}, dilation={self.dilation}")
        if self.depth_multiplier != 1:
            s += f", depth_multiplier={self.depth_multiplier}"
        if self.bias is None:
            s += ", bias=False"
        return s


class SeparableConv2d(nn.Module):
    """Depthwise-separable 2-D convolution, fused: a depthwise KxK convolution (optionally dilated,
    with a depth multiplier), an optional activation, then a pointwise 1x1 convolution, computed by
    :func:`atrous.separable_conv2d` without storing the intermediate.

    Its parameters are those of two children ``depthwise = nn.Conv2d(in_channels, in_channels *
    depth_multiplier, kernel_size, stride, padding, dilation, groups=in_channels, bias=bias)`` and
    ``pointwise = nn.Conv2d(in_channels * depth_multiplier, out_channels, 1, bias=bias)`` (the
    layout of timm's and segmentation_models_pytorch's separable blocks), so their state_dicts load
    both ways and the initialisation is nn.Conv2d's.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 depth_multiplier=1, activation=None, device=None, dtype=None):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("depth_multiplier", depth_multiplier)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        _check_activation(activation)
        mid = in_channels * depth_multiplier
        factory = {"device": device, "dtype": dtype}
        self.depthwise = nn.Conv2d(in_channels, mid, kernel_size, stride, padding, dilation, groups=in_channels,
                                   bias=bias, **factory)
        self.pointwise = nn.Conv2d(mid, out_channels, 1, bias=bias, **factory)
        self.activation = activation
        # Checks stride, padding and dilation as the functional form does.
        F._resolve_padding(self.depthwise.padding, list(self.depthwise.kernel_size),
                           F._pair("stride", self.depthwise.stride, 1), F._pair("dilation", self.depthwise.dilation, 1))

    @classmethod
    def from_convs(cls, dw_conv, pw_conv, activation=None):
        """A SeparableConv2d whose children are ``dw_conv`` and ``pw_conv`` themselves (parameters
        shared, not copied): ``dw_conv`` a depthwise nn.Conv2d (groups == in_channels, zero
        padding), ``pw_conv`` a 1x1 nn.Conv2d over its outputs (stride 1, no padding, groups 1).
        ``activation`` (None, 'relu' or 'relu6') is what the network applies between the two."""
        for name, conv in (("dw_conv", dw_conv), ("pw_conv", pw_conv)):
            if not isinstance(conv, nn.Conv2d):
                raise TypeError(f"from_convs expects {name} to be an nn.Conv2d, got {type(conv).__name__}")
            if conv.padding_mode != "zeros":
                raise ValueError(f"from_convs supports padding_mode='zeros' only, got {name}.padding_mode="
                                 f"{conv.padding_mode!r}")
        if dw_conv.groups != dw_conv.in_channels or dw_conv.out_channels % dw_conv.in_channels:
            raise ValueError(
                "from_convs expects dw_conv to be depthwise (groups == in_channels and out_channels a multiple "
                f"of in_channels), got in_channels={dw_conv.in_channels}, out_channels={dw_conv.out_channels}, "
                f"groups={dw_conv.groups}")
        if (tuple(pw_conv.kernel_size) != (1, 1) or tuple(pw_conv.stride) != (1, 1) or pw_conv.groups != 1
                or pw_conv.padding not in ((0, 0), "valid") or tuple(pw_conv.dilation) != (1, 1)):
            raise ValueError(
                "from_convs expects pw_conv to be a pointwise nn.Conv2d (kernel_size=1, stride=1, padding=0, "
                f"groups=1), got kernel_size={pw_conv.kernel_size}, stride={pw_conv.stride}, "
                f"padding={pw_conv.padding}, groups={pw_conv.groups}")
        if pw_conv.in_channels != dw_conv.out_channels:
            raise ValueError(f"pw_conv.in_channels ({pw_conv.in_channels}) must equal dw_conv.out_channels "
                             f"({dw_conv.out_channels})")
        _check_activation(activation)
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.depthwise = dw_conv
        module.pointwise = pw_conv
        module.activation = activation
        return module

    @property
    def in_channels(self):
        return self.depthwise.in_channels

    @property
    def out_channels(self):
        return self.pointwise.out_channels

    @property
    def depth_multiplier(self):
        return self.depthwise.out_channels // self.depthwise.in_channels

    def forward(self, input):
        dw, pw = self.depthwise, self.pointwise
        return F.separable_conv2d(input, dw.weight, pw.weight, dw.bias, pw.bias, dw.stride, dw.padding, dw.dilation,
                                  self.activation)

    def extra_repr(self):
        return f"activation={self.activation!r}"


def _check_activation(activation, name="activation"):
    if activation not in (None, "relu", "relu6"):
        raise ValueError(f"{name} must be None, 'relu' or 'relu6', got {activation!r}")


class MaxPool2d(nn.Module):
    """Drop-in for ``nn.MaxPool2d``: the same arguments and attributes, computed by
    :func:`atrous.max_pool2d` (the same values and indices as torch)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode
        F._pair("kernel_size", kernel_size, 1)
        F._pair("stride", self.stride, 1)
        F._pair("padding", padding, 0)
        F._pair("dilation", dilation, 1)

    @classmethod
    def from_pool(cls, pool):
        """The atrous module for an ``nn.MaxPool2d``, with its arguments."""
        if not isinstance(pool, nn.MaxPool2d):
            raise TypeError(f"from_pool expects an nn.MaxPool2d, got {type(pool).__name__}")
        return cls(pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.return_indices,
                   pool.ceil_mode)

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxUnpool2d(nn.Module):
    """Drop-in for ``nn.MaxUnpool2d``: ``forward(input, indices, output_size=None)``, computed by
    the deterministic :func:`atrous.max_unpool2d` (see there for duplicates and index checks)."""

    def __init__(self, kernel_size, stride=None, padding=0, validate_indices=True):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride) if stride is not None else self.kernel_size
        self.padding = _pair(padding)
        self.validate_indices = validate_indices
        F._pair("kernel_size", self.kernel_size, 1)
        F._pair("stride", self.stride, 1)
        F._pair("padding", self.padding, 0)

    @classmethod
    def from_unpool(cls, unpool):
        """The atrous module for an ``nn.MaxUnpool2d``, with its arguments."""
        if not isinstance(unpool, nn.MaxUnpool2d):
            raise TypeError(f"from_unpool expects an nn.MaxUnpool2d, got {type(unpool).__name__}")
        return cls(unpool.kernel_size, unpool.stride, unpool.padding)

    def forward(self, input, indices, output_size=None):
        return F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding, output_size,
                              self.validate_indices)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


# Modules of a model converted by atrous.convert


def activation_of(module):
    """'relu' or 'relu6' for a module that is exactly that activation, else None."""
    if type(module) is nn.ReLU:
        return "relu"
    if type(module) is nn.ReLU6 or (type(module) is nn.Hardtanh and module.min_val == 0 and module.max_val == 6):
        return "relu6"
    return None


def _share_state(holder, original):
    """holder registers original's parameters and buffers as its own, under the same names: the very
    dictionaries are shared, so moving, loading or saving either is seen by both."""
    holder._parameters = original._parameters
    holder._buffers = original._buffers
    holder._non_persistent_buffers_set = original._non_persistent_buffers_set
    holder._version = getattr(type(original), "_version", 1)
    object.__setattr__(holder, "_original", original)


class Absorbed(nn.Module):
    """Where a module of a fused chain was: the identity, computed by the :class:`FusedConv` at the
    head of the chain. It holds the module's parameters and buffers under their original names, so
    the state_dict keys stay those of the original model."""

    def __init__(self, original, into):
        super().__init__()
        _share_state(self, original)
        self.into = into

    def forward(self, input):
        return input

    def train(self, mode=True):
        self._original.train(mode)
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        # The original's own loading (batch norm fills in num_batches_tracked of old checkpoints).
        self._original._load_from_state_dict(*args, **kwargs)

    def extra_repr(self):
        return f"{type(self._original).__name__}, computed by {self.into!r}"


def _fold(weight, bias, bn):
    """weight and bias of a conv followed by the eval-mode batch norm bn, with bn folded in."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean if bias is None else bias - bn.running_mean
    shift = shift * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return weight * scale.view(-1, 1, 1, 1).to(weight.dtype), shift.to(weight.dtype)


class FusedConv(nn.Module):
    """A conv and the modules that follow it in a chain, as one op: a depthwise conv with an
    eval-mode batch norm folded in (:func:`atrous.depthwise_conv2d`), or, with a pointwise conv, the
    whole chain as one :func:`atrous.separable_conv2d`; or (``depthwise=False``) another conv with
    its batch norm folded in, which torch computes.

    It stands where the head conv was and holds its ``weight`` and ``bias``; the other members
    are :class:`Absorbed` in their own places. ``activation`` ('relu', 'relu6' or None) is what the
    chain applies between the two convs, ``post_activation`` what its last batch norm applies after
    them (timm's BatchNormAct2d). In training mode a chain with batch norms runs unfused: the atrous
    depthwise conv, then the original modules."""

    def __init__(self, dw, bn1=None, act=None, pw=None, bn2=None, activation=None, post_activation=None,
                 names=(), depthwise=True):
        super().__init__()
        if not depthwise and (pw is not None or act is not None):
            raise ValueError("only a depthwise head fuses with a pointwise conv")
        self.depthwise = depthwise
        _share_state(self, dw)
        object.__setattr__(self, "_members", (bn1, act, pw, bn2))
        _check_activation(activation)
        _check_activation(post_activation, "post_activation")
        if activation is not None and pw is None:
            raise ValueError("activation applies between the depthwise and a pointwise conv; pw is None")
        self.activation = activation
        self.post_activation = post_activation
        self.names = tuple(names)

    @property
    def head(self):
        """The conv at the head of the chain (its parameters are this module's)."""
        return self._original

    def train(self, mode=True):
        for m in (self._original, *self._members):
            if m is not None:
                m.train(mode)
        return super().train(mode)

    def forward(self, input):
        dw = self._original
        bn1, act, pw, bn2 = self._members
        if self.training and (bn1 is not None or bn2 is not None):
            return self._unfused(input)
        weight, bias, pw_weight, pw_bias = self._weights()
        if not self.depthwise:
            out = dw._conv_forward(input, weight, bias)
        elif pw is None:
            out = F.depthwise_conv2d(input, weight, bias, dw.stride, dw.padding, dw.dilation)
        else:
            out = F.separable_conv2d(input, weight, pw_weight, bias, pw_bias, dw.stride, dw.padding, dw.dilation,
                                     self.activation)
        # The ops' backward keeps no output, so the activation may overwrite it.
        if self.post_activation == "relu":
            out = torch.nn.functional.relu(out, inplace=True)
        elif self.post_activation == "relu6":
            out = torch.nn.functional.relu6(out, inplace=True)
        return out

    def _sources(self):
        dw = self._original
        bn1, _, pw, bn2 = self._members
        found = [dw.weight, dw.bias]
        for m in (bn1, pw, bn2):
            if m is not None:
                found += [m.weight, m.bias] + ([m.running_mean, m.running_var] if m is not pw else [])
        return [t for t in found if t is not None]

    def _fold_now(self):
        dw = self._original
        bn1, _, pw, bn2 = self._members
        weight, bias = dw.weight, dw.bias
        if bn1 is not None:
            weight, bias = _fold(weight, bias, bn1)
        pw_weight, pw_bias = (pw.weight, pw.bias) if pw is not None else (None, None)
        if bn2 is not None:
            pw_weight, pw_bias = _fold(pw_weight, pw_bias, bn2)
        return weight, bias, pw_weight, pw_bias

    def _weights(self):
        """The ops' weights and biases, batch norms folded in. Where autograd need not see the fold
        (no grad, or nothing requiring it) the folded tensors are kept until a source tensor changes
        (in place, as an optimizer or load_state_dict changes it, or for another): a fold is a few
        small ops per chain, a noticeable share of a batch-1 inference."""
        if self._members[0] is None and self._members[3] is None:
            return self._fold_now()
        sources = self._sources()
        if torch.compiler.is_compiling() or (torch.is_grad_enabled() and any(t.requires_grad for t in sources)):
            return self._fold_now()
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in sources)
        cache = self.__dict__.get("_folded")
        if cache is None or cache[0] != key:
            with torch.no_grad():
                cache = (key, self._fold_now())
            object.__setattr__(self, "_folded", cache)
        return cache[1]

    def _unfused(self, input):
        dw = self._original
        if self.depthwise:
            out = F.depthwise_conv2d(input, dw.weight, dw.bias, dw.stride, dw.padding, dw.dilation)
        else:
            out = dw(input)
        for m in self._members:
            if m is not None:
                out = m(out)
        return out

    def extra_repr(self):
        s = " -> ".join(self.names)
        if self.activation:
            s += f", activation={self.activation!r}"
        if self.post_activation:
            s += f", post_activation={self.post_activation!r}"
        return s

"""The depthwise layers of torchvision's networks, at the shapes the networks give them.

Each layer is found by a forward hook on every nn.Conv2d with groups == in_channels > 1 (random
weights, nothing downloaded) and described by a `Layer`: the input shape it was called with and
its geometry. `unique_layers` merges layers of equal shape and geometry, keeping where each one
occurs, so that a benchmark times each shape once and weighs it by how often it occurs.
"""

from dataclasses import dataclass, field

import torch

NETWORKS = ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_b3",
            "convnext_tiny", "mnasnet1_0", "deeplabv3_mobilenet_v3_large"]


@dataclass(frozen=True)
class Layer:
    shape: tuple  # (N, C, H, W) of the input
    out_channels: int
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    bias: bool

    def describe(self):
        n, c, h, w = self.shape
        k = "x".join(map(str, self.kernel))
        s = "" if self.stride == (1, 1) else f" s{self.stride[0]}" if self.stride[0] == self.stride[1] else f" s{self.stride}"
        d = "" if self.dilation == (1, 1) else f" d{self.dilation[0]}"
        m = "" if self.out_channels == c else f" m{self.out_channels // c}"
        return f"({n}, {c}, {h}, {w}) {k}{s}{d}{m}"


@dataclass
class UniqueLayer:
    layer: Layer
    uses: dict = field(default_factory=dict)  # network -> how many of its layers have this shape


def build(name):
    """torchvision's network `name` with random weights (segmentation networks by their name in
    torchvision.models.segmentation, with a random backbone too)."""
    import torchvision

    if hasattr(torchvision.models.segmentation, name):
        return getattr(torchvision.models.segmentation, name)(weights=None, weights_backbone=None)
    return getattr(torchvision.models, name)(weights=None)


def depthwise_layers(name, batch, size):
    """Every depthwise conv of network `name` called on a (batch, 3, size, size) image, in order."""
    model = build(name).eval()
    found = []

    def hook(module, args, _out):
        x = args[0]
        found.append(Layer(tuple(x.shape), module.out_channels, tuple(module.kernel_size), tuple(module.stride),
                           tuple(module.padding), tuple(module.dilation), module.bias is not None))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1]
    with torch.no_grad():
        model(torch.zeros(batch, 3, size, size))
    for h in handles:
        h.remove()
    return found


def unique_layers(networks, batch, size):
    """The distinct layers of `networks` in first-seen order, with their uses per network."""
    table = {}
    for name in networks:
        for layer in depthwise_layers(name, batch, size):
            entry = table.setdefault(layer, UniqueLayer(layer))
            entry.uses[name] = entry.uses.get(name, 0) + 1
    return list(table.values())

"""Every depthwise layer of torchvision's networks (benchmarks/networks.py), at the shape its network
gives it: ours against F.conv2d(groups=C), forward and every gradient, NCHW and channels_last, with
the CPU plan each layer gets. Skipped without torchvision."""

import os
import sys

import pytest
import torch
import torch.nn.functional as F

import atrous

pytest.importorskip("torchvision")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from networks import NETWORKS, unique_layers  # noqa: E402

ops = torch.ops.atrous

# Batch 1 at 160 px: the shapes of the benchmark's batch-8 configuration, one image.
LAYERS = unique_layers(NETWORKS, 1, 160)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("idx", range(len(LAYERS)), ids=[u.layer.describe() for u in LAYERS])
def test_network_layer_matches_conv2d(device, layout, idx):
    layer = LAYERS[idx].layer
    g = torch.Generator().manual_seed(idx)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(layer.shape, generator=g).to(device).contiguous(memory_format=fmt).requires_grad_()
    w = (torch.randn(layer.out_channels, 1, *layer.kernel, generator=g) / layer.kernel[0]).to(device).requires_grad_()
    b = torch.randn(layer.out_channels, generator=g).to(device).requires_grad_() if layer.bias else None
    args = (layer.stride, layer.padding, layer.dilation)
    out = atrous.depthwise_conv2d(x, w, b, *args)
    ref = F.conv2d(x, w, b, *args, groups=layer.shape[1])
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert out.is_contiguous(memory_format=fmt)
    go = torch.randn(ref.shape, generator=g).to(device)
    params = [t for t in (x, w, b) if t is not None]
    for ours, theirs in zip(torch.autograd.grad(out, params, go), torch.autograd.grad(ref, params, go)):
        torch.testing.assert_close(ours, theirs, atol=1e-3, rtol=1e-4)
    if device == "cpu":
        # The planner gives these layers the kernels made for them: row passes in channels_last
        # (every layer at 160 px has "same" padding, m = 1 and even inputs where strided), and
        # channel tiles in row passes for NCHW planes of up to 24 outputs a row.
        plan = ops._depthwise_conv2d_cpu_plan(x, w, list(layer.stride), list(layer.padding) * 2, list(layer.dilation))
        if layout == "channels_last":
            assert "forward=nhwc_rows" in plan and "backward_weight=nhwc_rows" in plan, plan
        elif ref.shape[-1] <= 24:
            assert "forward=nchw_channel_tiles(rows)" in plan and "backward_weight=nchw_channel_tiles(rows)" in plan, plan

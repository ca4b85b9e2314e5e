"""Property test: drawn shapes and arguments, zero-size dimensions included; every draw either
matches F.conv2d(groups=C) or raises a clear error where F.conv2d raises too."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import atrous


@st.composite
def configs(draw):
    return dict(
        N=draw(st.integers(0, 3)), C=draw(st.integers(0, 5)), m=draw(st.integers(1, 3)),
        H=draw(st.integers(0, 12)), W=draw(st.integers(0, 20)),
        kh=draw(st.integers(1, 6)), kw=draw(st.integers(1, 6)),
        stride=draw(st.tuples(st.integers(1, 3), st.integers(1, 3))),
        padding=draw(st.one_of(st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3)),
                               st.sampled_from(["same", "valid"]))),
        dilation=draw(st.tuples(st.integers(1, 4), st.integers(1, 4))),
        bias=draw(st.booleans()), channels_last=draw(st.booleans()),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs())
def test_drawn_configs_match_or_raise_clearly(cfg):
    x = torch.randn(cfg["N"], cfg["C"], cfg["H"], cfg["W"], dtype=torch.float64)
    if cfg["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    co = max(cfg["C"], 1) * cfg["m"]
    w = torch.randn(co, 1, cfg["kh"], cfg["kw"], dtype=torch.float64)
    b = torch.randn(co, dtype=torch.float64) if cfg["bias"] else None
    args = (cfg["stride"], cfg["padding"], cfg["dilation"])
    try:
        ref = F.conv2d(x, w, b, *args, groups=max(cfg["C"], 1))
    except RuntimeError:
        ref = None
    if ref is None:
        with pytest.raises((ValueError, TypeError)) as info:
            atrous.depthwise_conv2d(x, w, b, *args)
        assert any(word in str(info.value) for word in ("input", "weight", "padding", "kernel", "channel"))
        return
    out = atrous.depthwise_conv2d(x, w, b, *args)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)

"""Property test: drawn pooling geometries, shapes (empty batches included), layouts and ceil_mode;
every draw either matches F.max_pool2d bit for bit (values, indices, gradient) or raises a clear
error where torch raises too."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import atrous


@st.composite
def cases(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    return dict(N=draw(st.integers(0, 2)), C=draw(st.integers(1, 18)), H=draw(st.integers(1, 14)),
                W=draw(st.integers(1, 40)), kernel=(kh, kw),
                stride=draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4)))),
                padding=(draw(st.integers(0, 3)), draw(st.integers(0, 3))),
                dilation=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), ceil_mode=draw(st.booleans()),
                channels_last=draw(st.booleans()), ties=draw(st.booleans()))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=cases())
def test_drawn_cases_match_or_raise_clearly(cfg):
    shape = (cfg["N"], cfg["C"], cfg["H"], cfg["W"])
    x = torch.randint(-2, 3, shape).double() if cfg["ties"] else torch.randn(shape, dtype=torch.float64)
    if cfg["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    args = (cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"], cfg["ceil_mode"], True)
    ref_x = x.clone().requires_grad_()
    try:
        ref_v, ref_i = F.max_pool2d(ref_x, *args)
    except RuntimeError:
        with pytest.raises(ValueError, match="padding|output"):
            atrous.max_pool2d(x, *args)
        return
    xo = x.clone().requires_grad_()
    v, i = atrous.max_pool2d(xo, *args)
    assert torch.equal(v, ref_v) and torch.equal(i, ref_i)
    go = torch.randn_like(ref_v)
    got = torch.autograd.grad(v, xo, go)[0]
    plane = cfg["H"] * cfg["W"]
    if (ref_i < plane).all():
        assert torch.equal(got, torch.autograd.grad(ref_v, ref_x, go)[0])
    else:
        # A window with no tap inside the input (only possible with dilation) gets -inf and, from
        # torch, an index past its plane, which torch's backward would write out of bounds: ours
        # drops that gradient. Against the sum of the others (never calling torch's backward).
        n, c = ref_v.shape[:2]
        valid = ref_i < plane
        ref = torch.zeros(n, c, plane, dtype=go.dtype).scatter_add_(
            2, torch.where(valid, ref_i, 0).reshape(n, c, -1), torch.where(valid, go, 0).reshape(n, c, -1))
        torch.testing.assert_close(got, ref.reshape(x.shape))

"""Property test: drawn pooling geometries and shapes (empty batches included); every draw either
matches F.max_unpool2d bit for bit, forward and gradient, or raises a clear error where torch
raises too."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import atrous


@st.composite
def cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    return dict(N=draw(st.integers(0, 2)), C=draw(st.integers(1, 3)), H=draw(st.integers(kh, 12)),
                W=draw(st.integers(kw, 12)), kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw),
                channels_last=draw(st.booleans()), size_offset=draw(st.integers(-3, 3)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=cases())
def test_drawn_cases_match_or_raise_clearly(cfg):
    x = torch.randn(cfg["N"], cfg["C"], cfg["H"], cfg["W"], dtype=torch.float64)
    vals, idx = F.max_pool2d(x, cfg["kernel"], cfg["stride"], cfg["padding"], return_indices=True)
    if cfg["channels_last"]:
        vals, idx = (t.contiguous(memory_format=torch.channels_last) for t in (vals, idx))
    # An output size near the pooled input's: valid for torch or not, and the indices may not fit.
    size = (cfg["H"] + cfg["size_offset"], cfg["W"])
    args = (cfg["kernel"], cfg["stride"], cfg["padding"], size)
    v = vals.clone().requires_grad_()
    if min(size) < 0:
        # Some torch versions (2.11) accept a negative size for an empty batch; we never do.
        with pytest.raises(ValueError, match="output_size|output size"):
            atrous.max_unpool2d(vals, idx, *args)
        return
    try:
        ref = F.max_unpool2d(v, idx, *args)
    except (RuntimeError, ValueError):
        ref = None
    if ref is None:
        with pytest.raises((ValueError, IndexError)):
            atrous.max_unpool2d(vals, idx, *args)
        return
    if ref.numel() == 0 and vals.numel() > 0:
        # An empty output plane has no valid index for the values to place: torch returns the
        # empty output unchecked, we raise (documented).
        with pytest.raises(IndexError, match=r"out of range \[0, 0\)"):
            atrous.max_unpool2d(vals, idx, *args)
        return
    ours_v = vals.clone().requires_grad_()
    out = atrous.max_unpool2d(ours_v, idx, *args)
    assert torch.equal(out, ref)
    go = torch.randn_like(ref)
    assert torch.equal(torch.autograd.grad(out, ours_v, go)[0], torch.autograd.grad(ref, v, go)[0])

"""atrous.max_unpool2d against F.max_unpool2d, held to ../shared/RELIABILITY.md.

Every test runs on the CPU, and on CUDA when a GPU is present (the `device` fixture)."""

import random

import pytest
import torch
import torch.nn.functional as F
from helpers import LAYOUTS, in_layout, latest_wins_reference

import atrous

ops = torch.ops.atrous


def pooled(x, kernel, stride, padding):
    return F.max_pool2d(x, kernel, stride, padding, return_indices=True)


def random_case(rng):
    kh, kw = rng.randint(2, 4), rng.randint(2, 4)
    if rng.random() < 0.3:
        stride = None
        sh, sw = kh, kw
    else:
        sh, sw = rng.randint(1, 4), rng.randint(1, 4)
        stride = (sh, sw)
    padding = (rng.randint(0, kh // 2), rng.randint(0, kw // 2))
    H = rng.randint(kh, 14)
    W = rng.randint(kw, 15)
    return dict(N=rng.randint(1, 3), C=rng.randint(1, 4), H=H, W=W, kernel=(kh, kw), stride=stride,
                padding=padding, given_size=rng.random() < 0.5, unbatched=rng.random() < 0.2)


@pytest.mark.parametrize("seed", range(30))
def test_random_cases_match_reference(device, seed):
    rng = random.Random(seed)
    cfg = random_case(rng)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(cfg["N"], cfg["C"], cfg["H"], cfg["W"], generator=g, dtype=torch.float64)
    vals, idx = pooled(x, cfg["kernel"], cfg["stride"], cfg["padding"])
    stride = cfg["stride"] or cfg["kernel"]
    default = [(vals.shape[2 + d] - 1) * stride[d] + cfg["kernel"][d] - 2 * cfg["padding"][d] for d in range(2)]
    # Without output_size the indices fit only when the default size is the pooled input's size.
    size = x.shape if cfg["given_size"] or default != [cfg["H"], cfg["W"]] else None
    if cfg["unbatched"]:
        vals, idx, size = vals[0], idx[0], (x.shape[-2:] if size is not None else None)
    ref_v = vals.clone().requires_grad_()
    ref = F.max_unpool2d(ref_v, idx, cfg["kernel"], cfg["stride"], cfg["padding"], size)
    layout = LAYOUTS[seed % len(LAYOUTS)]
    v = vals.to(device)
    if not cfg["unbatched"]:
        v = in_layout(v, layout)
    v = v.detach().requires_grad_()
    i = idx.to(device)
    if seed % 3 == 0:  # int32 indices, read as they are on the CPU
        i = i.int()
    out = atrous.max_unpool2d(v, i, cfg["kernel"], cfg["stride"], cfg["padding"], size)
    assert torch.equal(out.cpu(), ref)
    go = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    gv, = torch.autograd.grad(out, v, go.to(device))
    rv, = torch.autograd.grad(ref, ref_v, go)
    assert torch.equal(gv.cpu(), rv)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_dtypes_and_layouts_exact(device, dtype, layout):
    x = torch.randn(2, 5, 12, 10).to(dtype)
    vals, idx = pooled(x.float(), 2, 2, 0)
    vals = vals.to(dtype)
    out = atrous.max_unpool2d(in_layout(vals.to(device), layout), in_layout(idx.to(device), layout), 2)
    assert out.dtype == dtype
    assert torch.equal(out.cpu(), F.max_unpool2d(vals.float(), idx, 2).to(dtype))
    assert out.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("kernel,stride,spread", [(2, 2, "windows"), (2, 2, "anywhere"), (3, 2, "windows"),
                                                  (3, 2, "anywhere")])
def test_int32_indices_same_as_int64(device, layout, kernel, stride, spread):
    # int32 indices on every path (gather, its fallback for an index outside its window, the
    # scatters, duplicates, the gradient), the same results as int64; an invalid one raises alike.
    g = torch.Generator().manual_seed(kernel * 10 + (spread == "anywhere"))
    x = torch.randn(3, 5, 16, 14, generator=g)
    vals, idx = pooled(x, kernel, stride, 0)
    size = (16, 14)
    if spread == "anywhere":
        idx = torch.randint(0, 16 * 14, idx.shape, generator=g)
    v = in_layout(vals.to(device), layout).requires_grad_()
    i64 = in_layout(idx.to(device), layout)
    i32 = in_layout(idx.int().to(device), layout)
    out64 = atrous.max_unpool2d(v, i64, kernel, stride, 0, size)
    out32 = atrous.max_unpool2d(v, i32, kernel, stride, 0, size)
    assert torch.equal(out32, out64)
    assert torch.equal(out64.cpu(), latest_wins_reference(vals, idx, 16, 14))
    go = torch.randn(out64.shape, generator=g).to(device)
    assert torch.equal(torch.autograd.grad(out32, v, go)[0], torch.autograd.grad(out64, v, go)[0])
    for bad in (-1, 16 * 14, 2**31 - 1):
        b = idx.int().clone()
        b[2, 4, 1, 2] = bad
        with pytest.raises(IndexError, match=rf"index {bad} at input position \(n=2, c=4, h=1, w=2\)"):
            atrous.max_unpool2d(v, in_layout(b.to(device), layout), kernel, stride, 0, size)


# --- the gather form's guard, duplicates and determinism ---------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("kernel,stride", [(2, 2), (2, 3), (3, 2), (3, 3)])
def test_index_outside_its_window_gives_the_scatter_result(device, layout, kernel, stride):
    g = torch.Generator().manual_seed(kernel * 10 + stride)
    x = torch.randn(2, 3, kernel + 4 * stride, kernel + 3 * stride, generator=g)  # the default size
    vals, idx = pooled(x, kernel, stride, 0)
    oh, ow = (vals.shape[2] - 1) * stride + kernel, (vals.shape[3] - 1) * stride + kernel
    idx = idx.clone()
    idx[0, 1, 0, 0] = oh * ow - 1            # in range, far outside its window
    idx[1, 2, 1, 2] = idx[1, 2, 0, 0]         # a duplicate: the later position must win
    expected = latest_wins_reference(vals, idx, oh, ow)
    outs = [atrous.max_unpool2d(in_layout(vals.to(device), layout), in_layout(idx.to(device), layout),
                                kernel, stride) for _ in range(3)]
    for o in outs:
        assert torch.equal(o.cpu(), expected)
    if device != "cpu":
        assert torch.equal(outs[0].cpu(), atrous.max_unpool2d(vals, idx, kernel, stride))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("batch,channels", [(1, 40), (3, 5)])
@pytest.mark.parametrize("spread", ["windows", "anywhere"])
def test_overlapping_windows_scatter(device, layout, batch, channels, spread):
    # Overlapping windows take the scatter form; channels_last zeroes the output rows as it goes
    # (whole images, or bands of rows when images are fewer than threads). Indices anywhere in the
    # plane, far below the rows zeroed so far, must still give the scatter result.
    g = torch.Generator().manual_seed(batch * 100 + channels)
    x = torch.randn(batch, channels, 23, 21, generator=g)
    vals, idx = pooled(x, 3, 2, 1)
    if spread == "anywhere":
        idx = torch.randint(0, 23 * 21, idx.shape, generator=g)
    expected = latest_wins_reference(vals, idx, 23, 21)
    for _ in range(3):
        # Memory of the output's size full of NaN, freed just before: an output element the op
        # forgets to write is then likely to show.
        del_me = torch.full((batch, channels, 23, 21), float("nan"), device=device)
        del del_me
        out = atrous.max_unpool2d(in_layout(vals.to(device), layout),
                                  in_layout(idx.to(device), layout), 3, 2, 1, (23, 21))
        assert torch.equal(out.cpu(), expected)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("batch", [1, 3])
def test_windows_past_a_smaller_output_are_still_checked(device, layout, batch):
    # A 1x1 kernel with stride 2 over 3 rows pools rows 0 and 2; unpooled into 2 rows, the second
    # window row lies wholly past the output and its index 2 is out of range [0, 2): an error,
    # as torch gives, on every path (hypothesis found the banded scatter skipping such rows).
    x = torch.randn(batch, 2, 3, 1)
    vals, idx = F.max_pool2d(x, 1, (2, 1), return_indices=True)
    with pytest.raises(IndexError, match="out of range"):
        atrous.max_unpool2d(in_layout(vals.to(device), layout), in_layout(idx.to(device), layout),
                            1, (2, 1), 0, (2, 1))


def test_many_duplicates_are_deterministic(device):
    g = torch.Generator().manual_seed(7)
    vals = torch.randn(2, 4, 9, 9, generator=g)
    idx = torch.randint(0, 16, (2, 4, 9, 9), generator=g)  # 81 values onto 16 positions
    expected = latest_wins_reference(vals, idx, 9, 9)
    previous = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True)  # torch's CUDA max_unpool2d raises here; we run
        for layout in ("contiguous", "channels_last"):
            for _ in range(3):
                out = atrous.max_unpool2d(in_layout(vals.to(device), layout), in_layout(idx.to(device), layout),
                                          3, 1, 1, (9, 9))
                assert torch.equal(out.cpu(), expected)
    finally:
        torch.use_deterministic_algorithms(previous)


def test_gradient_with_duplicates_is_a_gather(device):
    vals = torch.randn(1, 2, 4, 4, dtype=torch.float64, device=device, requires_grad=True)
    idx = torch.zeros(1, 2, 4, 4, dtype=torch.int64, device=device)  # everything to position 0
    out = atrous.max_unpool2d(vals, idx, 2, 2)
    go = torch.randn_like(out)
    gv, = torch.autograd.grad(out, vals, go)
    assert torch.equal(gv, go.reshape(1, 2, -1)[..., :1].expand(1, 2, 16).reshape(1, 2, 4, 4))


def test_gradcheck_unique_indices(device):
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    vals, idx = pooled(x, 2, 2, 0)
    v = vals.to(device).requires_grad_()
    i = idx.to(device)
    assert torch.autograd.gradcheck(lambda v: atrous.max_unpool2d(v, i, 2), (v,))


# --- edge shapes -------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_batch_zero(device, layout):
    vals = in_layout(torch.randn(0, 3, 4, 4, device=device), layout).requires_grad_()
    idx = torch.zeros(0, 3, 4, 4, dtype=torch.int64, device=device)
    out = atrous.max_unpool2d(vals, idx, 2)
    assert out.shape == F.max_unpool2d(vals.detach().cpu(), idx.cpu(), 2).shape == (0, 3, 8, 8)
    out.sum().backward()
    assert vals.grad.shape == vals.shape


# --- bad input: clear errors, nothing changed, the next call works -------------------------------

def _bad_cases(device):
    vals = torch.randn(1, 2, 4, 4, device=device)
    idx = torch.zeros(1, 2, 4, 4, dtype=torch.int64, device=device)
    return [
        ((vals, idx[..., :3], 2), {}, ValueError, r"indices must have the input's shape \(1, 2, 4, 4\), got \(1, 2, 4, 3\)"),
        ((vals, idx.float(), 2), {}, TypeError, "indices must be int64 .* got torch.float32"),
        ((vals[0, 0], idx[0, 0], 2), {}, ValueError, r"input must be 3-D .* got 2-D"),
        ((vals, idx, 2), dict(stride=0), ValueError, r"stride must be in \[1, 2\^31 - 1\], got 0"),
        ((vals, idx, 0), {}, ValueError, "kernel_size must be in"),
        ((vals, idx, 2), dict(output_size=(3, 8)), ValueError, r'invalid output_size "\[3, 8\]" \(dim 0 must be between 6 and 10\)'),
        ((vals, idx, 2), dict(output_size=(8, 8, 8)), ValueError, "output_size should be a sequence containing 2 or 4 elements"),
        ((vals.int(), idx, 2), {}, TypeError, "input must be float32, float64, float16 or bfloat16"),
    ]


def test_bad_arguments(device):
    for args, kwargs, exc, pattern in _bad_cases(device):
        with pytest.raises(exc, match=pattern):
            atrous.max_unpool2d(*args, **kwargs)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2)])
@pytest.mark.parametrize("bad", [-1, 64, 2**32, 2**32 + 5, -(2**40)])
def test_invalid_index_raises_and_changes_nothing(device, layout, kernel, stride, bad):
    x = torch.randn(2, 3, kernel + 3 * stride, kernel + 3 * stride)  # the default size
    vals, idx = pooled(x, kernel, stride, 0)
    oh = (vals.shape[2] - 1) * stride + kernel
    idx = idx.clone()
    idx[1, 2, 1, 0] = bad if bad != 64 else oh * oh  # 64: exactly one past the end
    value = int(idx[1, 2, 1, 0])
    v = in_layout(vals.to(device), layout)
    i = in_layout(idx.to(device), layout)
    v0, i0 = v.clone(), i.clone()
    with pytest.raises(IndexError, match=rf"index {value} at input position \(n=1, c=2, h=1, w=0\) is out of range \[0, {oh * oh}\)"):
        atrous.max_unpool2d(v, i, kernel, stride)
    assert torch.equal(v, v0) and torch.equal(i, i0)
    # The device (the CUDA context too) stays usable.
    good = atrous.max_unpool2d(v, in_layout(pooled(x, kernel, stride, 0)[1].to(device), layout), kernel, stride)
    assert torch.equal(good.cpu(), F.max_unpool2d(vals, pooled(x, kernel, stride, 0)[1], kernel, stride))


def test_unvalidated_invalid_index_is_skipped_safely(device):
    vals = torch.randn(1, 1, 2, 2, device=device)
    idx = torch.tensor([[[[0, 2**33], [-5, 15]]]], device=device)
    out = atrous.max_unpool2d(vals, idx, 2, validate_indices=False) if device != "cpu" else None
    if out is not None:
        expected = torch.zeros(1, 1, 16)
        expected[0, 0, 0], expected[0, 0, 15] = vals[0, 0, 0, 0].cpu(), vals[0, 0, 1, 1].cpu()
        assert torch.equal(out.cpu().reshape(1, 1, 16), expected)
    else:  # the CPU always checks
        with pytest.raises(IndexError):
            atrous.max_unpool2d(vals, idx, 2, validate_indices=False)


# --- registration, compile, modules ------------------------------------------------------------

def test_opcheck(device):
    x = torch.randn(2, 3, 8, 8)
    vals, idx = pooled(x, 2, 2, 0)
    for layout in ("contiguous", "channels_last"):
        for rg in (False, True):
            v = in_layout(vals.to(device), layout).detach().requires_grad_(rg)
            i = in_layout(idx.to(device), layout)
            go = in_layout(torch.randn(2, 3, 8, 8).to(device), layout)
            for i_ in (i, i.int()):
                torch.library.opcheck(ops.max_unpool2d.default, (v, i_, [2, 2], [2, 2], [0, 0], [8, 8], True))
                torch.library.opcheck(ops.max_unpool2d_backward.default, (go, i_))


def test_torch_compile_fullgraph(device):
    torch._dynamo.reset()
    x = torch.randn(2, 3, 8, 8, device=device, requires_grad=True)

    def f(x):
        y, i = F.max_pool2d(x, 2, return_indices=True)
        return atrous.max_unpool2d(y * 2, i, 2, output_size=x.shape).sin()

    compiled = torch.compile(f, fullgraph=True)
    out_c, out_e = compiled(x), f(x)
    torch.testing.assert_close(out_c, out_e)
    gc, = torch.autograd.grad(out_c.sum(), x)
    ge, = torch.autograd.grad(out_e.sum(), x)
    torch.testing.assert_close(gc, ge)


def test_module_is_a_drop_in(device):
    pool = torch.nn.MaxPool2d(2, return_indices=True)
    ours, theirs = atrous.nn.MaxUnpool2d(2), torch.nn.MaxUnpool2d(2)
    x = torch.randn(2, 4, 9, 9, device=device)
    y, i = pool(x)
    assert torch.equal(ours(y, i, output_size=x.size()), theirs(y, i, output_size=x.size()))
    assert repr(ours).startswith("MaxUnpool2d(kernel_size=(2, 2)")

"""atrous.max_pool2d against F.max_pool2d, held to ../shared/RELIABILITY.md (lines 29-30 above all).

Every test runs on the CPU, and on CUDA when a GPU is present (the `device` fixture)."""

import random

import pytest
import torch
import torch.nn.functional as F
from helpers import LAYOUTS, in_layout

import atrous

ops = torch.ops.atrous
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


def random_case(rng):
    square = rng.random() < 0.2
    kh = rng.randint(1, 5)
    kw = kh if square else rng.randint(1, 5)
    dil = (rng.choice([1, 1, 2]), rng.choice([1, 1, 2]))
    stride = None if rng.random() < 0.3 else (rng.randint(1, 3), rng.randint(1, 3))
    pad = tuple(rng.randint(0, k // 2) for k in (kh, kw))
    h = rng.randint((kh - 1) * dil[0] + 1, 19)
    w = rng.randint((kw - 1) * dil[1] + 1, 40)
    return dict(N=rng.randint(0 if rng.random() < 0.1 else 1, 3), C=rng.randint(1, 20), H=h, W=w,
                kernel=kh if square else (kh, kw), stride=stride, padding=pad, dilation=dil,
                ceil_mode=rng.random() < 0.4, unbatched=rng.random() < 0.15)


def reference(x, cfg, return_indices=True):
    return F.max_pool2d(x, cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"], cfg["ceil_mode"],
                        return_indices)


def ours(x, cfg, return_indices=True):
    return atrous.max_pool2d(x, cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"], cfg["ceil_mode"],
                             return_indices)


def make_input(cfg, dtype, seed, ties=False):
    g = torch.Generator().manual_seed(seed)
    shape = (cfg["C"], cfg["H"], cfg["W"]) if cfg["unbatched"] else (cfg["N"], cfg["C"], cfg["H"], cfg["W"])
    if ties:  # integer values: many ties, exact in every dtype
        return torch.randint(-3, 4, shape, generator=g).to(dtype)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("seed", range(48))
def test_random_cases_match_torch(device, seed):
    """Values and indices exactly torch's (CPU torch as the reference), and the gradient."""
    rng = random.Random(seed)
    cfg = random_case(rng)
    dtype = DTYPES[seed % len(DTYPES)]
    x = make_input(cfg, dtype, seed, ties=seed % 3 == 1)
    ref_x = x.clone().requires_grad_()
    ref_v, ref_i = reference(ref_x, cfg)
    xd = x.to(device)
    if not cfg["unbatched"]:
        xd = in_layout(xd, LAYOUTS[seed % len(LAYOUTS)])
    xd = xd.detach().requires_grad_()
    v, i = ours(xd, cfg)
    assert v.shape == ref_v.shape and v.dtype == dtype and i.dtype == torch.int64
    assert torch.equal(v.cpu(), ref_v)
    assert torch.equal(i.cpu(), ref_i)
    go = make_input(dict(cfg, C=ref_v.shape[-3], H=ref_v.shape[-2], W=ref_v.shape[-1]), dtype, seed + 1)
    go = go.reshape(ref_v.shape)
    ref_g, = torch.autograd.grad(ref_v, ref_x, go)
    g, = torch.autograd.grad(v, xd, go.to(device))
    if dtype in (torch.float32, torch.float64) or not _overlaps(cfg):
        # The same sums in the same order: bit for bit (half types: one term each).
        assert torch.equal(g.cpu(), ref_g)
    else:
        assert_half_gradient(g.cpu(), x, go, cfg)


def assert_half_gradient(got, x, go, cfg):
    """Half types sum in float here (in the half type in torch): against the float64 sums, within
    one rounding of the result."""
    x64 = x.double().requires_grad_()
    ref, = torch.autograd.grad(reference(x64, cfg, False), x64, go.double())
    torch.testing.assert_close(got.double(), ref.to(got.dtype).double(), atol=1e-2, rtol=1e-2)


def _overlaps(cfg):
    k = cfg["kernel"] if isinstance(cfg["kernel"], tuple) else (cfg["kernel"],) * 2
    s = cfg["stride"] or k
    return any(si < (ki - 1) * di + 1 for ki, si, di in zip(k, s, cfg["dilation"]))


# Shapes that send each CPU path its work (csrc/cpu/max_pool/plan.cpp), with the plan they must get.
# The backward's gathers serve NCHW planes of more than 16384 elements (or more than 4096 in inputs
# of more than 2^22), and channels_last windows that do not overlap, of a vector of channels or more,
# are written from their own gradients (nhwc_windows); the rest scatter. The gathers' cases are tall
# planes. "windows_or_scatter": nhwc_windows from a vector's lanes of channels (by dtype and CPU).
PATH_CASES = [
    # (shape, layout, kernel, stride, padding, dilation, ceil_mode, forward, backward)
    ((2, 3, 328, 50), "contiguous", 2, 2, 0, 1, False, "nchw_rows", "nchw_gather_2x2"),
    ((1, 2, 245, 67), "contiguous", 2, 2, 0, 1, True, "nchw_rows", "nchw_gather_2x2"),
    ((2, 3, 235, 70), "contiguous", 3, 2, 1, 1, False, "nchw_rows", "nchw_window_gather"),
    ((1, 2, 365, 45), "contiguous", 3, 1, 1, 1, False, "nchw_rows", "nchw_phase_scatter"),
    ((1, 2, 206, 80), "contiguous", (2, 3), 3, (1, 1), (2, 1), True, "nchw_rows", "nchw_window_gather"),
    ((1, 2, 184, 90), "contiguous", 3, 2, 1, 2, False, "nchw_rows", "nchw_phase_scatter"),
    ((1, 2, 183, 90), "contiguous", 5, 1, 2, 1, True, "nchw_rows", "nchw_row_scatter"),
    ((1, 3, 275, 60), "contiguous", (3, 4), (2, 3), (1, 2), (1, 2), True, "nchw_rows", "nchw_phase_scatter"),
    ((2, 3, 2049, 8), "contiguous", 3, 3, 1, 1, True, "generic", "nchw_window_gather"),
    ((2, 3, 1822, 9), "contiguous", (2, 3), (2, 3), 0, 1, False, "generic", "nchw_window_gather"),
    ((2, 3, 1491, 11), "contiguous", 3, 3, 1, 1, True, "nchw_rows", "nchw_window_gather"),
    ((2, 3, 1366, 12), "contiguous", (2, 3), (2, 3), 0, 1, False, "nchw_rows", "nchw_window_gather"),
    ((2, 3, 1367, 12), "contiguous", 3, 2, 1, 1, False, "nchw_rows", "nchw_window_gather"),
    ((1, 2, 329, 50), "contiguous", 2, 3, 0, 1, False, "nchw_rows", "nchw_window_gather"),
    ((1, 2, 323, 51), "contiguous", 3, 2, 1, 1, True, "nchw_rows", "nchw_window_gather"),
    ((1, 2, 410, 40), "contiguous", 4, 2, 1, 1, False, "nchw_rows", "nchw_window_gather"),
    ((2, 2, 443, 37), "contiguous", (3, 5), (2, 4), (1, 2), 1, True, "nchw_rows", "nchw_window_gather"),
    ((2, 3, 632, 26), "contiguous", (2, 2), (2, 2), 0, 1, True, "nchw_rows", "nchw_gather_2x2"),
    ((2, 3, 781, 21), "contiguous", (2, 3), 1, 0, (1, 2), True, "nchw_rows", "nchw_row_scatter"),
    ((2, 3, 747, 22), "contiguous", (2, 3), 3, 0, 1, False, "nchw_rows", "nchw_window_gather"),
    # Small planes: the scatter, over every kind of window.
    ((2, 3, 40, 50), "contiguous", 2, 2, 0, 1, False, "nchw_rows", "scatter"),
    ((2, 3, 33, 70), "contiguous", 3, 2, 1, 1, False, "nchw_rows", "scatter"),
    ((1, 2, 30, 90), "contiguous", 5, 1, 2, 1, True, "nchw_rows", "scatter"),
    ((1, 3, 17, 60), "contiguous", (3, 4), (2, 3), (1, 2), (1, 2), True, "nchw_rows", "scatter"),
    ((2, 3, 9, 8), "contiguous", 3, 3, 1, 1, True, "generic", "scatter"),
    ((2, 3, 12, 21), "contiguous", (2, 3), 1, 0, (1, 2), True, "nchw_rows", "scatter"),
    # "nhwc": nhwc_channels or nhwc_taps by the channels (nhwc_forward below).
    ((2, 70, 578, 13), "channels_last", 2, 2, 0, 1, False, "nhwc", "nhwc_windows"),
    ((2, 300, 159, 11), "channels_last", 2, 2, 0, 1, True, "nhwc_taps", "nhwc_windows"),
    ((2, 70, 12, 13), "channels_last", 2, 2, 0, 1, False, "nhwc", "nhwc_windows"),
    # Windows apart (strides past the span), padded, dilated (rows and columns in no window, zero),
    # a last row of windows that the input cuts short, and channels past the last whole vector.
    ((2, 20, 13, 11), "channels_last", (2, 3), (3, 4), 1, 1, True, "nhwc", "nhwc_windows"),
    ((1, 24, 17, 15), "channels_last", 2, 3, 0, (2, 1), False, "nhwc", "nhwc_windows"),
    ((3, 19, 9, 10), "channels_last", 3, 3, 1, 1, True, "nhwc", "nhwc_windows"),
    ((1, 12, 8, 9), "channels_last", 2, 2, 0, 1, False, "nhwc", "windows_or_scatter"),
    ((1, 37, 14, 9), "channels_last", 3, 2, 1, 1, True, "nhwc", "scatter"),
    ((1, 5, 14, 9), "channels_last", (3, 2), (1, 2), (1, 0), (1, 2), False, "nhwc_channels", "scatter"),
    ((1, 129, 7, 8), "channels_last", 3, 1, 1, 1, False, "nhwc_taps", "scatter"),
    ((2, 300, 9, 11), "channels_last", 2, 2, 0, 1, True, "nhwc_taps", "nhwc_windows"),
    ((1, 200, 10, 9), "channels_last", 3, 2, 1, 1, True, "nhwc_taps", "scatter"),
    ((1, 150, 12, 14), "channels_last", (3, 2), (1, 2), (1, 0), (1, 2), False, "nhwc_taps", "scatter"),
    # Overlapping windows over a large image, and 4 channels (fewer than a vector's lanes but for
    # float64 on avx2): the scatter too.
    ((1, 40, 130, 120), "channels_last", 3, 2, 1, 1, False, "nhwc", "scatter"),
    ((1, 4, 400, 330), "channels_last", 2, 2, 0, 1, False, "nhwc", "windows_or_scatter"),
]


def vector_lanes(dtype):
    """Lanes of the active CPU capability's kernel vectors for dtype's accumulation type (the
    kernels' vectors are one register: 64 bytes on avx512, 32 on avx2; csrc/cpu/vector_bytes.h)."""
    cap = atrous.build_info()["cpu_capability"]
    return (32 if cap == "avx2" else 64) // (8 if dtype == torch.float64 else 4)


def nhwc_forward(channels, dtype):
    """The channels_last forward plan.cpp gives `channels` of dtype: whole pixels in registers up
    to 8 vectors of channels with avx512's 32 registers, 4 with avx2's 16; tap by tap beyond."""
    blocks = 8 if atrous.build_info()["cpu_capability"] == "avx512" else 4
    return "nhwc_channels" if channels <= blocks * vector_lanes(dtype) else "nhwc_taps"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", PATH_CASES, ids=lambda c: f"{c[7]}-{c[8]}-{c[0]}-{c[2]}")
def test_each_cpu_path_runs_and_matches(case, dtype):
    shape, layout, k, s, p, d, ceil, fwd, bwd = case
    g = torch.Generator().manual_seed(7)
    x = in_layout(torch.randn(shape, generator=g, dtype=torch.float64).to(dtype), layout)
    out_w = F.max_pool2d(x[:1, :1], k, s, p, d, ceil).shape[-1]
    kw, sw, dw = _two(k)[1], _two(s)[1], _two(d)[1]
    if fwd == "nhwc":
        fwd = nhwc_forward(shape[1], dtype)
    if bwd == "windows_or_scatter":
        bwd = "nhwc_windows" if shape[1] >= vector_lanes(dtype) else "scatter"
    if bwd == "nchw_row_scatter" and fwd == "nchw_rows" and out_w >= vector_lanes(dtype) and (kw - 1) * dw < 4 * sw:
        bwd = "nchw_phase_scatter"  # rows of a vector's worth of outputs with narrower vectors (avx2)
    assert ops._max_pool2d_cpu_plan(x, _two(k), _two(s), _two(p), _two(d), ceil) == f"forward={fwd} backward={bwd}"
    x[0, 0, 0, :3] = float("nan")  # NaN propagation on every path
    x[-1, -1, -3:, -3:] = float("-inf")
    ref_x = x.detach().clone().requires_grad_()
    ref_v, ref_i = F.max_pool2d(ref_x, k, s, p, d, ceil, True)
    xo = x.detach().clone().requires_grad_()
    v, i = atrous.max_pool2d(xo, k, s, p, d, ceil, True)
    torch.testing.assert_close(v, ref_v, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(i, ref_i)
    assert v.is_contiguous(memory_format=_fmt(layout)) and i.is_contiguous(memory_format=_fmt(layout))
    # Without indices the values are the same.
    torch.testing.assert_close(atrous.max_pool2d(x, k, s, p, d, ceil), ref_v, rtol=0, atol=0, equal_nan=True)
    go = torch.randn(ref_v.shape, generator=g, dtype=torch.float64).to(dtype)
    ref_g, = torch.autograd.grad(ref_v, ref_x, go)
    got, = torch.autograd.grad(v, xo, go)
    if dtype in (torch.float32, torch.float64):
        assert torch.equal(got, ref_g)
    else:
        cfg = dict(kernel=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
        assert_half_gradient(got, x.detach(), go, cfg)
    assert got.is_contiguous(memory_format=_fmt(layout))


def test_backward_path_by_size():
    """plan.cpp's choices at their bounds (float32): the scatter for NCHW planes of up to 4096
    elements, or up to 16384 in inputs of up to 2^22; channels_last windows that do not overlap from
    a vector of channels, the scatter otherwise."""
    def bwd(shape, k=2, s=2, p=0, channels_last=False):
        x = torch.empty(shape)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return ops._max_pool2d_cpu_plan(x, [k, k], [s, s], [p, p], [1, 1], False).split("backward=")[1]
    assert bwd((300, 4, 64, 64)) == "scatter"  # 4096-element planes in an input of 4.9M
    assert bwd((1, 4, 64, 66)) == "scatter"  # 4224-element planes, a small input
    assert bwd((250, 4, 64, 66)) == "nchw_gather_2x2"  # the same planes in an input of 4.2M
    assert bwd((1, 1, 128, 128)) == "scatter" and bwd((1, 1, 128, 130)) == "nchw_gather_2x2"
    lanes = vector_lanes(torch.float32)
    assert bwd((1, 32, 128, 128), channels_last=True) == "nhwc_windows"
    assert bwd((1, 32, 128, 130), 3, 2, 1, channels_last=True) == "scatter"  # overlapping windows
    assert bwd((1, 32, 128, 130), 3, 3, 1, channels_last=True) == "nhwc_windows"
    assert bwd((1, lanes, 512, 512), channels_last=True) == "nhwc_windows"  # one vector of channels
    assert bwd((1, lanes - 1, 512, 512), channels_last=True) == "scatter"  # fewer


def _two(v):
    return [v, v] if isinstance(v, int) else list(v)


def _fmt(layout):
    return torch.channels_last if layout == "channels_last" else torch.contiguous_format


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_nan_and_inf_rules(device, layout):
    """The last NaN of a window wins; -inf windows give their first position; padding never wins."""
    x = torch.full((1, 16, 6, 40), float("-inf"), device=device)
    x[0, 0, 0, 0] = float("nan")
    x[0, 1, 1, 1] = float("nan")
    x[0, 1, 1, 2] = float("nan")
    x[0, 2, 2, 5] = 3.0
    x[0, 2, 3, 5] = float("nan")
    x = in_layout(x, layout)
    for k, s, p, ceil in [(2, 2, 0, False), (3, 2, 1, True), (3, 1, 1, False), (2, 1, 1, False)]:
        ref_v, ref_i = F.max_pool2d(x.cpu(), k, s, p, 1, ceil, True)
        v, i = atrous.max_pool2d(x, k, s, p, 1, ceil, True)
        torch.testing.assert_close(v.cpu(), ref_v, equal_nan=True, rtol=0, atol=0)
        assert torch.equal(i.cpu(), ref_i)
        assert (i >= 0).all()  # never a padded position


def test_window_without_taps_gives_torchs_index_and_a_safe_gradient(device):
    """A dilated window whose every tap falls outside the input: -inf, and torch's index (past the
    plane), which torch's own backward would write out of bounds; ours drops that gradient."""
    x = torch.randn(1, 2, 2, 5, device=device, requires_grad=True)
    v, i = atrous.max_pool2d(x, 3, 4, 1, 3, True, True)
    rv, ri = F.max_pool2d(x.detach().cpu(), 3, 4, 1, 3, True, True)
    assert torch.equal(v.detach().cpu(), rv) and torch.equal(i.cpu(), ri)
    assert (ri >= 10).all()  # torch's index lies past the 2x5 plane
    g, = torch.autograd.grad(v, x, torch.ones_like(v))
    assert torch.equal(g, torch.zeros_like(g))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_window_without_taps_in_a_row_sends_its_gradient_where_torchs_index_points(layout, dtype):
    """A window whose taps along W all lie in the padding gets torch's index of a tap past the
    row's end, which names an element of the next row (found by hypothesis): torch's backward
    sends the gradient there, and so does ours (the scatter backward)."""
    x = in_layout(torch.randn(2, 3, 2, 1, dtype=torch.float64).to(dtype), layout)
    assert ops._max_pool2d_cpu_plan(x, [2, 2], [2, 2], [0, 1], [1, 2], False).endswith("backward=scatter")
    xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    v, i = atrous.max_pool2d(xo, 2, None, (0, 1), (1, 2), False, True)
    rv, ri = F.max_pool2d(xr, 2, None, (0, 1), (1, 2), False, True)
    assert torch.equal(v, rv) and torch.equal(i, ri) and (ri == 1).all()
    go = torch.randn(rv.shape, dtype=torch.float64).to(dtype)
    got, = torch.autograd.grad(v, xo, go)
    assert torch.equal(got, torch.autograd.grad(rv, xr, go)[0])


def test_ties_go_to_the_first(device):
    x = torch.zeros(2, 17, 9, 33, device=device)
    for k, s, p, d in [(2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 1, 2), (5, 3, 2, 1)]:
        for layout in ("contiguous", "channels_last"):
            xl = in_layout(x, layout)
            assert torch.equal(atrous.max_pool2d(xl, k, s, p, d, return_indices=True)[1].cpu(),
                               F.max_pool2d(x.cpu(), k, s, p, d, return_indices=True)[1])


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_overlapping_gradient_deterministic_and_thread_independent(layout):
    g = torch.Generator().manual_seed(3)
    x = in_layout(torch.randint(0, 3, (2, 24, 37, 41), generator=g).float(), layout).requires_grad_()
    go = torch.randn(2, 24, 19, 21, generator=g)
    results = []
    threads = torch.get_num_threads()
    try:
        for t in (1, 2, 3, 1):
            torch.set_num_threads(t)
            v = atrous.max_pool2d(x, 3, 2, 1)
            results.append(torch.autograd.grad(v, x, go)[0])
    finally:
        torch.set_num_threads(threads)
    for r in results[1:]:
        assert torch.equal(r, results[0])
    ref, = torch.autograd.grad(F.max_pool2d(x, 3, 2, 1), x, go)
    assert torch.equal(results[0], ref)


def test_deterministic_algorithms(device):
    x = torch.randn(2, 8, 20, 20, device=device, requires_grad=True)
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        outs = []
        for _ in range(2):
            v, i = atrous.max_pool2d(x, 3, 2, 1, return_indices=True)
            outs.append((v, i, torch.autograd.grad(v.sum(), x)[0]))
    finally:
        torch.use_deterministic_algorithms(prev)
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_gradcheck_and_gradgradcheck(device):
    # Distinct values: no ties, so the gradient is smooth around the point.
    x = (torch.randperm(2 * 3 * 9 * 10, dtype=torch.float64) / 7).reshape(2, 3, 9, 10).to(device)
    for args in [(2, 2, 0, 1, False), (3, 2, 1, 1, True), ((2, 3), (1, 2), (1, 1), (2, 1), False)]:
        xg = x.clone().requires_grad_()
        f = lambda t: atrous.max_pool2d(t, *args)  # noqa: E731
        assert torch.autograd.gradcheck(f, (xg,))
        assert torch.autograd.gradgradcheck(f, (xg,))


def test_batch_zero(device):
    for layout in ("contiguous", "channels_last"):
        x = in_layout(torch.randn(0, 4, 10, 10, device=device), layout).requires_grad_()
        v, i = atrous.max_pool2d(x, 2, return_indices=True)
        assert v.shape == (0, 4, 5, 5) and i.shape == (0, 4, 5, 5)
        g, = torch.autograd.grad(v.sum(), x)
        assert g.shape == x.shape


def test_unbatched_and_module(device):
    x = torch.randn(3, 11, 12, device=device)
    v, i = atrous.max_pool2d(x, 3, 2, 1, return_indices=True)
    rv, ri = F.max_pool2d(x.cpu(), 3, 2, 1, return_indices=True)
    assert v.shape == (3, 6, 6) and torch.equal(v.cpu(), rv) and torch.equal(i.cpu(), ri)
    m = atrous.nn.MaxPool2d(3, 2, 1, ceil_mode=True, return_indices=True)
    ref = torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True, return_indices=True)
    xb = torch.randn(2, 4, 13, 13, device=device)
    for a, b in zip(m(xb), ref(xb.cpu())):
        assert torch.equal(a.cpu(), b)
    conv = atrous.nn.MaxPool2d.from_pool(torch.nn.MaxPool2d((2, 3), dilation=(1, 2)))
    assert torch.equal(conv(xb).cpu(), F.max_pool2d(xb.cpu(), (2, 3), dilation=(1, 2)))
    assert "kernel_size=(2, 3)" in repr(conv)


def test_round_trip_to_unpool(device):
    x = torch.randn(2, 16, 24, 30, device=device)
    for layout in ("contiguous", "channels_last"):
        xl = in_layout(x, layout)
        for k, s, p in [(2, 2, 0), (3, 2, 1)]:
            v, i = atrous.max_pool2d(xl, k, s, p, return_indices=True)
            ours_up = atrous.max_unpool2d(v, i, k, s, p, output_size=x.shape[-2:])
            torch_up = F.max_unpool2d(v, i, k, s, p, output_size=x.shape[-2:])
            assert torch.equal(ours_up, torch_up)


def test_without_indices_under_grad(device):
    """return_indices=False with a grad: the indices are computed for the backward; the raw op
    without them pools again in the backward."""
    x = torch.randn(2, 3, 12, 12, device=device, dtype=torch.float64, requires_grad=True)
    g1, = torch.autograd.grad(atrous.max_pool2d(x, 3, 2, 1).sum(), x)
    v, idx = ops.max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], False, False)
    assert idx.numel() == 0
    g2, = torch.autograd.grad(v.sum(), x)
    ref, = torch.autograd.grad(F.max_pool2d(x, 3, 2, 1).sum(), x)
    assert torch.equal(g1, ref) and torch.equal(g2, ref)


def test_backward_fills_no_gradient_for_the_indices():
    """Autograd would fill a zero gradient for the int64 indices output at every backward (twice
    the values' bytes): the backward runs only our backward op."""
    x = torch.randn(2, 8, 20, 20, requires_grad=True)
    v, idx = atrous.max_pool2d(x, 3, 2, 1, return_indices=True)
    g = torch.randn_like(v)
    with torch.profiler.profile() as prof:
        gx, = torch.autograd.grad(v, x, g)
    names = {e.key for e in prof.key_averages()}
    assert not names & {"aten::zeros", "aten::zero_", "aten::fill_"}, names
    ref, = torch.autograd.grad(F.max_pool2d(x, 3, 2, 1), x, g)
    assert torch.equal(gx, ref)


def test_compile_fullgraph(device):
    def f(t):
        v, i = atrous.max_pool2d(t, 3, 2, 1, return_indices=True)
        return v * 2, i

    x = torch.randn(2, 8, 17, 19, device=device, requires_grad=True)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    (a, ai), (b, bi) = compiled(x), f(x)
    assert torch.equal(a, b) and torch.equal(ai, bi)
    assert torch.equal(torch.autograd.grad(a.sum(), x)[0], torch.autograd.grad(b.sum(), x)[0])
    xc = x.detach().contiguous(memory_format=torch.channels_last)
    assert torch.equal(torch.compile(f, fullgraph=True)(xc)[0], f(xc)[0])


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_opcheck(device, layout):
    x = in_layout(torch.randn(2, 5, 11, 13, device=device, dtype=torch.float64), layout)
    for args in [([2, 2], [2, 2], [0, 0], [1, 1], False, True), ([3, 3], [2, 2], [1, 1], [1, 1], True, True),
                 ([3, 2], [1, 2], [1, 0], [2, 1], False, False)]:
        for rg in (False, True):
            torch.library.opcheck(ops.max_pool2d, (x.clone().requires_grad_(rg), *args))
        v, i = ops.max_pool2d(x, *args[:5], True)
        go = torch.randn_like(v)
        torch.library.opcheck(ops.max_pool2d_backward, (go, i, list(x.shape), *args[:5]))


def test_export(device):
    class M(torch.nn.Module):
        def forward(self, t):
            return atrous.max_pool2d(t, 2, return_indices=True)

    x = torch.randn(1, 3, 8, 8, device=device)
    ep = torch.export.export(M(), (x,))
    for a, b in zip(ep.module()(x), M()(x)):
        assert torch.equal(a, b)


def test_autocast_runs_in_input_dtype():
    x = torch.randn(1, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert atrous.max_pool2d(x, 2).dtype == F.max_pool2d(x, 2).dtype == torch.float32


BAD = [
    (dict(kernel_size=0), ValueError, "kernel_size"),
    (dict(kernel_size=2, stride=0), ValueError, "stride"),
    (dict(kernel_size=2, dilation=0), ValueError, "dilation"),
    (dict(kernel_size=2, padding=-1), ValueError, "padding"),
    (dict(kernel_size=3, padding=2), ValueError, "half the kernel"),
    (dict(kernel_size=3, padding=2, dilation=2), ValueError, "half the kernel"),
    (dict(kernel_size=(2, 2, 2)), TypeError, "kernel_size"),
    (dict(kernel_size=2.5), TypeError, "kernel_size"),
    (dict(kernel_size=9), ValueError, "output"),
    (dict(kernel_size=2, stride=2**31), ValueError, "stride"),
]


@pytest.mark.parametrize("kwargs,exc,text", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_arguments(kwargs, exc, text):
    x = torch.randn(1, 2, 6, 6)
    before = x.clone()
    with pytest.raises(exc, match=text):
        atrous.max_pool2d(x, **kwargs)
    assert torch.equal(x, before)
    with pytest.raises(Exception):  # torch refuses the same arguments
        F.max_pool2d(x, **kwargs)
    assert atrous.max_pool2d(x, 2).shape == (1, 2, 3, 3)  # the next valid call works


def test_bad_inputs():
    with pytest.raises(ValueError, match="3-D .* or 4-D"):
        atrous.max_pool2d(torch.randn(6, 6), 2)
    with pytest.raises(ValueError, match="non-zero"):
        atrous.max_pool2d(torch.randn(1, 0, 6, 6), 2)
    with pytest.raises(TypeError, match="float32"):
        atrous.max_pool2d(torch.ones(1, 1, 4, 4, dtype=torch.int32), 2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        atrous.max_pool2d([1.0, 2.0], 2)


def test_raw_op_checks_before_any_kernel():
    x = torch.randn(1, 2, 6, 6)
    with pytest.raises(RuntimeError, match="padding"):
        ops.max_pool2d(x, [3, 3], [1, 1], [2, 2], [1, 1], False, True)
    with pytest.raises(RuntimeError, match="too small"):
        ops.max_pool2d(x, [7, 7], [1, 1], [0, 0], [1, 1], False, True)
    with pytest.raises(RuntimeError, match="4-D"):
        ops.max_pool2d(x[0], [2, 2], [2, 2], [0, 0], [1, 1], False, True)
    v, i = ops.max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], False, True)
    with pytest.raises(RuntimeError, match="int64"):
        ops.max_pool2d_backward(v, i.int(), [1, 2, 6, 6], [2, 2], [2, 2], [0, 0], [1, 1], False)
    with pytest.raises(RuntimeError, match="shape"):
        ops.max_pool2d_backward(v, i, [1, 2, 8, 8], [2, 2], [2, 2], [0, 0], [1, 1], False)

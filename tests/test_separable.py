"""atrous.separable_conv2d (fused depthwise then pointwise) against two F.conv2d calls, held to
../shared/RELIABILITY.md.

The op has CPU kernels only so far: the tests run on the CPU (the CUDA kernels are not written)."""

import contextlib
import math
import random
import zlib

import pytest
import torch
import torch.nn.functional as F
from helpers import LAYOUTS, assert_close_all, grads, in_layout, random_padding, RecordOps

import atrous

ops = torch.ops.atrous
ACTS = {None: lambda t: t, "relu": F.relu, "relu6": F.relu6}


def reference(x, dw, pw, db, pb, stride, padding, dilation, activation):
    mid = F.conv2d(x, dw, db, stride, padding, dilation, groups=x.shape[-3])
    return F.conv2d(ACTS[activation](mid), pw, pb)


def random_config(rng, wide=False):
    kh, kw = rng.randint(1, 7), rng.randint(1, 7)
    stride = (rng.randint(1, 3), rng.randint(1, 3))
    dilation = (rng.randint(1, 4), rng.randint(1, 4))
    padding, (need_h, need_w) = random_padding(rng, (kh, kw), stride, dilation)
    if wide:  # many channels, small planes
        C, m, Co = rng.randint(1, 256), 1, rng.randint(1, 512)
        H, W = need_h + rng.randint(0, 6), need_w + rng.randint(0, 6)
    else:  # tall planes too, so that images are cut into several bands
        C, m, Co = rng.randint(1, 12), rng.randint(1, 3), rng.randint(1, 20)
        H, W = need_h + rng.randint(0, 90), need_w + rng.randint(0, 30)
    return dict(N=rng.randint(1, 3), C=C, m=m, Co=Co, kh=kh, kw=kw, H=H, W=W, stride=stride, padding=padding,
                dilation=dilation, dw_bias=rng.random() < 0.6, pw_bias=rng.random() < 0.6,
                activation=rng.choice([None, "relu", "relu6"]))


def make_inputs(cfg, dtype=torch.float64, scale_relu6=True):
    """Leaf tensors (input, dw_weight, pw_weight, dw_bias, pw_bias) in float64 holding values the
    dtype holds exactly, the same on every run."""
    g = torch.Generator().manual_seed(zlib.crc32(str(cfg).encode()))
    C, m, Co = cfg["C"], cfg["m"], cfg["Co"]

    def randn(*shape, scale=1.0):
        t = torch.randn(*shape, generator=g, dtype=torch.float64) * scale
        return t.to(dtype).double() if dtype in (torch.float16, torch.bfloat16) else t

    # relu6 clips at 6: spread the intermediate so that both of its ends are met.
    s = 3.0 if cfg["activation"] == "relu6" and scale_relu6 else 1.0
    x = randn(cfg["N"], C, cfg["H"], cfg["W"], scale=s)
    dw = randn(C * m, 1, cfg["kh"], cfg["kw"])
    pw = randn(Co, C * m, 1, 1)
    db = randn(C * m) if cfg["dw_bias"] else None
    pb = randn(Co) if cfg["pw_bias"] else None
    return x, dw, pw, db, pb


def geometry(cfg):
    return cfg["stride"], cfg["padding"], cfg["dilation"], cfg["activation"]


def check_config(cfg, layout, dtype=torch.float64, atol=1e-10, rtol=1e-10):
    leaves = make_inputs(cfg, dtype)
    ours = [None if t is None else t.to(dtype).requires_grad_() for t in leaves]
    refs = [None if t is None else t.clone().requires_grad_() for t in leaves]
    x, dw, pw, db, pb = ours
    out = atrous.separable_conv2d(in_layout(x, layout), dw, pw, db, pb, *geometry(cfg))
    ref = reference(*refs, *geometry(cfg))
    assert out.shape == ref.shape and out.dtype == dtype
    torch.testing.assert_close(out.double(), ref, atol=atol, rtol=rtol)
    go = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    if dtype in (torch.float16, torch.bfloat16):
        go = go.to(dtype).double()
    got = grads(out, ours, go.to(dtype))
    expected = grads(ref, refs, go)
    assert_close_all([t.double() for t in got], expected, atol=atol, rtol=rtol)
    return out


def cpu_plan(cfg, layout="contiguous", dtype=torch.float64):
    """The plan string at the current thread count: "<order> pointwise=.. images=.. bands=.. rows=..
    chunks=.. depthwise(...)"."""
    x, dw, pw, _, _ = make_inputs(cfg)
    x = in_layout(x.to(dtype), layout)
    stride, padding, dilation, _ = geometry(cfg)
    pad = atrous.functional._resolve_padding(padding, [cfg["kh"], cfg["kw"]], list(stride), list(dilation))
    return ops._separable_conv2d_cpu_plan(x, dw.to(dtype), pw.to(dtype), list(stride), pad, list(dilation))


def plan_fields(plan):
    """{"order": "per-thread" or "serial", "pointwise": "onednn" or "gemm", "gmid": "gemm", "backward-data"
    or "transposed", "images": int, "bands": int, "rows": int, "chunks": int}."""
    words = plan.split(" depthwise(")[0].split()
    fields = dict(w.split("=") for w in words[1:])
    return {"order": words[0], **{k: v if k in ("pointwise", "gmid") else int(v) for k, v in fields.items()}}


@contextlib.contextmanager
def num_threads(n):
    """torch's intra-op thread count set to n (the plan's tile order depends on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- 1. random configurations against the reference, forward and every gradient ---------------

@pytest.mark.parametrize("seed", range(40))
def test_random_configs_match_reference(seed):
    cfg = random_config(random.Random(seed))
    check_config(cfg, LAYOUTS[seed % len(LAYOUTS)])


@pytest.mark.parametrize("seed", range(12))
def test_random_wide_configs_match_reference(seed):
    cfg = random_config(random.Random(500 + seed), wide=True)
    check_config(cfg, ["contiguous", "channels_last"][seed % 2])


# --- 2. every tiling: one band per image, several, bands that read only padding, grouped images,
# both tile orders ------------------------------------------------------------------------------

def cfg_of(N, C, Co, H, W, k=3, m=1, stride=(1, 1), padding=1, dilation=(1, 1), dw_bias=True, pw_bias=True,
           activation="relu"):
    return dict(N=N, C=C, m=m, Co=Co, kh=k, kw=k, H=H, W=W, stride=stride, padding=padding, dilation=dilation,
                dw_bias=dw_bias, pw_bias=pw_bias, activation=activation)


TILINGS = [
    # (name, threads, cfg, what the plan must show). At one thread every tile order is per-thread.
    ("one band", 1, cfg_of(1, 8, 16, 12, 40), dict(order="per-thread", images=1, bands=1)),
    ("grouped images", 1, cfg_of(6, 8, 16, 8, 10), dict(order="per-thread", images=6, bands=1)),
    ("grouped images, last group short", 1, cfg_of(70, 8, 6, 4, 5, activation="relu6"),
     dict(order="per-thread", images=26, bands=1)),
    ("bands, stride 1", 2, cfg_of(1, 24, 40, 200, 64, pw_bias=False, activation=None),
     dict(order="per-thread", images=1)),
    ("bands, stride 2", 1, cfg_of(1, 16, 24, 161, 80, k=5, m=2, stride=(2, 2), padding=2, dw_bias=False,
                                  activation="relu6"), dict(order="per-thread", images=1)),
    ("bands, dilated", 1, cfg_of(1, 32, 8, 100, 60, padding=6, dilation=(6, 6)), dict(order="per-thread")),
    ("bands of padding only", 2, cfg_of(1, 3, 5, 4, 128, padding=(60, 0), activation="relu6"),
     dict(order="per-thread")),
    ("bands, one column", 1, cfg_of(1, 5, 4, 3200, 1, k=7, padding=3, dw_bias=False, pw_bias=False, activation=None),
     dict(order="per-thread")),
    ("bands, uneven", 2, cfg_of(3, 7, 9, 150, 330, k=3, m=3, stride=(3, 1), padding=(3, 1), dilation=(2, 3)),
     dict(order="per-thread")),  # images larger than a tile: bands, though there are several
    ("serial, one tile", 2, cfg_of(8, 64, 32, 6, 6), dict(order="serial", images=8, bands=1, chunks=1)),
    ("serial, grouped images", 2, cfg_of(40, 512, 8, 8, 8, activation="relu6"),
     dict(order="serial", images=16, bands=1, chunks=1)),
    ("serial, bands", 2, cfg_of(1, 128, 8, 160, 56, stride=(2, 1)), dict(order="serial", images=1, chunks=1)),
    ("serial, bands of padding only", 2, cfg_of(1, 600, 3, 3, 20, padding=(60, 1), activation="relu6"),
     dict(order="serial", images=1, chunks=1)),
    ("whole images, shared evenly", 2, cfg_of(4, 16, 24, 40, 40), dict(order="per-thread", images=1, bands=1)),
    # A depthwise result of 1.25 MB an image (float64), past one tile's budget but within two:
    # whole images, an image a thread (plan.cpp: kWholeImageFactor).
    ("whole images past one tile", 2, cfg_of(2, 32, 8, 70, 70), dict(order="per-thread", images=1, bands=1)),
]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
@pytest.mark.parametrize("idx", range(len(TILINGS)))
def test_every_tiling(layout, idx):
    name, threads, cfg, want = TILINGS[idx]
    with num_threads(threads):
        fields = plan_fields(cpu_plan(cfg, "channels_last" if "channels_last" in layout else "contiguous"))
        assert {k: fields[k] for k in want} == want, (name, fields)
        if "bands" in name:
            assert fields["bands"] > 1, (name, fields)
        check_config(cfg, layout)


def test_tile_order_follows_the_thread_count():
    # Few tiles: each thread takes its own at 1 thread, all threads take each at 2 and 4.
    cfg = cfg_of(8, 1024, 64, 5, 5)
    orders = {}
    for t in (1, 2, 4):
        with num_threads(t):
            orders[t] = plan_fields(cpu_plan(cfg))["order"]
    assert orders == {1: "per-thread", 2: "serial", 4: "serial"}


def test_pointwise_engine_follows_dtype_layout_capability_and_vendor():
    # oneDNN for float32 with the AVX-512 kernels on an Intel CPU; elsewhere for NCHW planes of
    # under 400 pixels with the AVX-512 kernels and of under 64 with AVX2; GEMMs otherwise
    # (csrc/cpu/separable/plan.cpp: pointwise_engine).
    info = atrous.build_info()
    avx512 = info["cpu_capability"] == "avx512"
    intel512 = avx512 and info["cpu_vendor"] == "intel"

    def engine(cfg, layout, dtype):
        return plan_fields(cpu_plan(cfg, layout, dtype))["pointwise"]

    tiny, mid, large = cfg_of(2, 64, 32, 5, 5), cfg_of(2, 64, 32, 14, 14), cfg_of(2, 64, 32, 28, 28)
    for cfg in (tiny, mid, large):
        assert engine(cfg, "contiguous", torch.float64) == "gemm"
        assert engine(cfg, "channels_last", torch.bfloat16) == "gemm"
    assert engine(tiny, "contiguous", torch.float32) == "onednn"
    assert engine(mid, "contiguous", torch.float32) == ("onednn" if avx512 else "gemm")
    assert engine(large, "contiguous", torch.float32) == ("onednn" if intel512 else "gemm")
    assert engine(tiny, "channels_last", torch.float32) == ("onednn" if intel512 else "gemm")
    # With oneDNN switched off, GEMMs everywhere.
    with torch.backends.mkldnn.flags(enabled=False):
        assert engine(tiny, "contiguous", torch.float32) == "gemm"


@pytest.mark.parametrize("threads,batch,layout,gmid", [
    (2, 4, "contiguous", "backward-data"), (1, 4, "contiguous", "transposed"), (1, 1, "contiguous", "backward-data"),
    (2, 3, "channels_last", None), (1, 3, "channels_last", None)])
def test_float32_engines_match_reference(threads, batch, layout, gmid):
    # The float32 paths of each pointwise engine, forward and every gradient, against float64 (the
    # other tests run float64, which always takes GEMMs). NCHW planes of 6x6 take oneDNN on every
    # CPU; the intermediate's gradient then goes by its backward-data, or at one thread on tiles of
    # several images by oneDNN with the transposed weight (plan.cpp: mid_grad_of). With oneDNN off,
    # GEMMs.
    cfg = cfg_of(batch, 24, 40, 6, 6, activation="relu6")
    eps = torch.finfo(torch.float32).eps
    for mkldnn in (True, False):
        with num_threads(threads), torch.backends.mkldnn.flags(enabled=mkldnn):
            fields = plan_fields(cpu_plan(cfg, layout, torch.float32))
            if not mkldnn:
                assert (fields["pointwise"], fields["gmid"]) == ("gemm", "gemm")
            elif gmid is not None:
                assert (fields["pointwise"], fields["gmid"]) == ("onednn", gmid)
            leaves = [None if t is None else t.float().double() for t in make_inputs(cfg)]  # float32 values
            g_ours = [None if t is None else t.float().requires_grad_() for t in leaves]
            g_ref = [None if t is None else t.clone().requires_grad_() for t in leaves]
            out = atrous.separable_conv2d(in_layout(g_ours[0], layout), *g_ours[1:], *geometry(cfg))
            ref = reference(*g_ref, *geometry(cfg))
            torch.testing.assert_close(out.double(), ref, atol=1e-4, rtol=1e-4)
            go = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
            got = grads(out, g_ours, go.float())
            expected = grads(ref, g_ref, go)
            for a, e in zip(got, expected):
                scale = e.abs().max().item() + 1
                assert (a.double() - e).abs().max().item() <= 16 * eps * scale * math.sqrt(e.numel() / e.shape[0] + 1)


def test_tiles_prefetch_as_the_whole_problem(monkeypatch):
    # A tile's part of the input comes from memory whenever the whole input does, though the tile
    # alone is small enough for the cache: the tiles' channels_last row passes prefetch wherever
    # the whole problem's would (csrc/cpu/separable/plan.cpp: tile_forward_plan).
    monkeypatch.setenv("ATROUS_CPU_CACHE_BYTES", "0")  # the planner's fixed threshold, whatever the cache
    x = torch.empty(4, 64, 112, 112).contiguous(memory_format=torch.channels_last)
    dw, pw = torch.empty(64, 1, 3, 3), torch.empty(128, 64, 1, 1)
    geometry_args = ([2, 2], [1] * 4, [1, 1])
    whole = ops._depthwise_conv2d_cpu_plan(x, dw, *geometry_args).split()[0]
    one_image = ops._depthwise_conv2d_cpu_plan(x[:1], dw, *geometry_args).split()[0]
    assert whole.endswith("+prefetch") and not one_image.endswith("+prefetch"), (whole, one_image)
    with num_threads(1):
        sep = ops._separable_conv2d_cpu_plan(x, dw, pw, *geometry_args)
    assert (plan_fields(sep)["images"], plan_fields(sep)["bands"]) == (1, 1), sep
    assert sep.split("depthwise(")[1].split()[0].endswith("+prefetch"), sep


def test_plan_reports_its_depthwise_kernels():
    cfg = TILINGS[3][2]
    assert cpu_plan(cfg).split()[0] in ("per-thread", "serial") and "depthwise(" in cpu_plan(cfg)
    assert "nhwc" in cpu_plan(cfg, "channels_last")


# --- 3. half types -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("idx", [3, 4, 5, 9, 11])
def test_half_types_within_tolerance(dtype, layout, idx):
    # Inputs the dtype holds exactly; depthwise sums in float, the intermediate rounded once to the
    # dtype (as two torch convolutions in that dtype round it), the pointwise product accumulated
    # in float. The bound: a few roundings of the dtype's epsilon, relative to the magnitudes summed.
    _, threads, cfg, _ = TILINGS[idx]
    with num_threads(threads):  # the tile order of the tiling
        eps = torch.finfo(dtype).eps
        leaves = make_inputs(cfg, dtype)
        x, dw, pw, db, pb = (None if t is None else t.to(dtype) for t in leaves)
        out = atrous.separable_conv2d(in_layout(x, layout), dw, pw, db, pb, *geometry(cfg)).double()
        ref = reference(*leaves, *geometry(cfg))
        absref = reference(*(None if t is None else t.abs() for t in leaves), *geometry(cfg)[:3], None)
        assert ((out - ref).abs() <= 4 * eps * (absref + 1)).all()
        # The gradients against float64 with the same kind of bound.
        g_ours = [None if t is None else t.clone().requires_grad_() for t in (x, dw, pw, db, pb)]
        g_ref = [None if t is None else t.clone().requires_grad_() for t in leaves]
        o = atrous.separable_conv2d(in_layout(g_ours[0], layout), *g_ours[1:], *geometry(cfg))
        go = torch.randn(o.shape, generator=torch.Generator().manual_seed(2)).to(dtype)
        got = grads(o, g_ours, go)
        expected = grads(reference(*g_ref, *geometry(cfg)), g_ref, go.double())
        for a, e in zip(got, expected):
            scale = e.abs().max().item() + 1
            assert (a.double() - e).abs().max().item() <= 16 * eps * scale * math.sqrt(e.numel() / e.shape[0] + 1)


# --- 4. gradients ------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("stride,padding,dilation,m,activation",
                         [(1, 1, 1, 1, None), (2, (1, 2), (2, 1), 2, "relu"), (1, "same", 2, 1, "relu6")])
def test_gradcheck(layout, stride, padding, dilation, m, activation):
    g = torch.Generator().manual_seed(0)
    t = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_()  # noqa: E731
    x, dw, pw, db, pb = t(2, 3, 7, 8), t(3 * m, 1, 3, 2), t(5, 3 * m, 1, 1), t(3 * m), t(5)

    def f(x, dw, pw, db, pb):
        return atrous.separable_conv2d(in_layout(x, layout), dw, pw, db, pb, stride, padding, dilation, activation)

    assert torch.autograd.gradcheck(f, (x, dw, pw, db, pb))


def test_double_backward_raises():
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    dw = torch.randn(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    pw = torch.randn(3, 2, 1, 1, dtype=torch.float64, requires_grad=True)
    out = atrous.separable_conv2d(x, dw, pw, padding=1)
    gx, = torch.autograd.grad(out.sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="does not support double backward"):
        gx.sum().backward()


NAMES = ["x", "dw", "pw", "db", "pb"]


@pytest.mark.parametrize("needs", ["x", "dw", "pw", "db", "pb", "x dw", "pw pb", "dw db", "x pw", "x dw db pw pb"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_backward_is_one_op_with_the_needed_mask_and_same_bits(needs, layout):
    cfg = TILINGS[8][2]
    leaves = make_inputs(cfg)
    full = [t.clone().requires_grad_() for t in leaves]
    part = [t.clone().requires_grad_(n in needs.split()) for t, n in zip(leaves, NAMES)]
    go = torch.randn(reference(*leaves, *geometry(cfg)).shape, dtype=torch.float64)
    gf = torch.autograd.grad(atrous.separable_conv2d(in_layout(full[0], layout), *full[1:], *geometry(cfg)), full, go)
    out = atrous.separable_conv2d(in_layout(part[0], layout), *part[1:], *geometry(cfg))
    with RecordOps() as rec:
        gp = torch.autograd.grad(out, [t for t in part if t.requires_grad], go)
    ran = [args for func, args in rec.calls if func is ops.separable_conv2d_backward.default]
    # The backward op's outputs: (input, dw_weight, dw_bias, pw_weight, pw_bias).
    mask = [n in needs.split() for n in ("x", "dw", "db", "pw", "pb")]
    assert len(ran) == 1 and list(ran[0][-1]) == mask
    assert_close_all(gp, [g for g, n in zip(gf, NAMES) if n in needs.split()], atol=0, rtol=0)


# --- 5. what autograd keeps --------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_nothing_of_the_intermediate_is_saved(layout):
    x = in_layout(torch.randn(2, 16, 40, 40), layout).requires_grad_()
    dw = torch.randn(32, 1, 3, 3, requires_grad=True)  # the intermediate is (2, 32, 40, 40)
    pw = torch.randn(8, 32, 1, 1, requires_grad=True)
    db, pb = torch.randn(32, requires_grad=True), torch.randn(8, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = atrous.separable_conv2d(x, dw, pw, db, pb, 1, 1, 1, "relu")
    mid_numel = 2 * 32 * 40 * 40
    assert saved and all(t.numel() < mid_numel for t in saved)
    assert sum(t.numel() for t in saved) == x.numel() + dw.numel() + pw.numel() + db.numel()
    out.sum().backward()  # and the backward works from what was kept
    # The two-conv reference keeps the intermediate.
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        reference(x, dw, pw, db, pb, 1, 1, 1, "relu")
    assert any(t.numel() >= mid_numel for t in saved)


# --- 6. opcheck, fake kernel, compile, export ---------------------------------------------------

MASKS = [[bool(i >> j & 1) for j in range(5)] for i in range(1, 32)]


def _opcheck_samples():
    g = torch.Generator().manual_seed(3)
    for layout in ["contiguous", "channels_last"]:
        for rg in [False, True]:
            t = lambda *s: torch.randn(*s, generator=g).requires_grad_(rg)  # noqa: E731
            x = in_layout(torch.randn(2, 3, 8, 9, generator=g), layout).requires_grad_(rg)
            dw, pw, db, pb = t(6, 1, 3, 3), t(5, 6, 1, 1), t(6), t(5)
            yield ops.separable_conv2d.default, (x, dw, pw, db, pb, [1, 2], [1, 0, 2, 1], [1, 1], "relu")
            yield ops.separable_conv2d.default, (x, dw, pw, None, None, [2, 1], [0, 0, 0, 0], [2, 1], "none")
            if rg:  # the backward op has no derivative of its own (double backward raises)
                continue
            go = in_layout(torch.randn(2, 5, 8, 9, generator=g), layout)
            for mask in MASKS[::5]:
                yield ops.separable_conv2d_backward.default, (go, x, dw, pw, db, [1, 1], [1] * 4, [1, 1], "relu6", mask)


def test_opcheck():
    for op, args in _opcheck_samples():
        torch.library.opcheck(op, args)


def test_fake_kernel_matches_real_strides():
    from torch._subclasses.fake_tensor import FakeTensorMode

    for op, args in _opcheck_samples():
        real = op(*args)
        with FakeTensorMode() as mode:
            fake = op(*[mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args])
        for r, f in zip(*((t,) if isinstance(t, torch.Tensor) else t for t in (real, fake)), strict=True):
            assert f.shape == r.shape and f.stride() == r.stride() and f.dtype == r.dtype


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_torch_compile_fullgraph(layout):
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(5)
    x = in_layout(torch.randn(2, 4, 12, 13, generator=g), layout).requires_grad_()
    dw = torch.randn(8, 1, 3, 3, generator=g).requires_grad_()
    pw = torch.randn(6, 8, 1, 1, generator=g).requires_grad_()
    pb = torch.randn(6, generator=g).requires_grad_()

    def f(x, dw, pw, pb):
        return atrous.separable_conv2d(x, dw, pw, None, pb, stride=(1, 2), padding="valid", dilation=2,
                                       activation="relu6").tanh()

    compiled = torch.compile(f, fullgraph=True)
    out_c, out_e = compiled(x, dw, pw, pb), f(x, dw, pw, pb)
    torch.testing.assert_close(out_c, out_e)
    go = torch.randn_like(out_e)
    assert_close_all(torch.autograd.grad(out_c, (x, dw, pw, pb), go), torch.autograd.grad(out_e, (x, dw, pw, pb), go))


def test_torch_export():
    model = atrous.nn.SeparableConv2d(4, 7, 3, padding=1, depth_multiplier=2, activation="relu")
    x = torch.randn(2, 4, 10, 10)
    ep = torch.export.export(model, (x,))
    assert any("atrous.separable_conv2d" in str(n.target) for n in ep.graph.nodes)
    torch.testing.assert_close(ep.module()(x), model(x))


# --- 7. layouts and edge shapes ----------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_output_memory_format_follows_torch(layout):
    x = in_layout(torch.randn(2, 4, 10, 12), layout)
    dw, pw = torch.randn(4, 1, 3, 3), torch.randn(5, 4, 1, 1)
    out = atrous.separable_conv2d(x, dw, pw, padding=1)
    ref = reference(x, dw, pw, None, None, 1, 1, 1, None)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    cl = torch.channels_last
    assert out.is_contiguous(memory_format=cl) == ref.is_contiguous(memory_format=cl)
    assert out.is_contiguous() == ref.is_contiguous()


def test_noncontiguous_and_expanded_weights():
    x = torch.randn(2, 4, 10, 12, dtype=torch.float64)
    dw = torch.randn(1, 1, 3, 3, dtype=torch.float64).expand(4, 1, 3, 3)
    pw = torch.randn(4, 6, 1, 1, dtype=torch.float64).transpose(0, 1)
    db = torch.randn(8, dtype=torch.float64)[::2]
    out = atrous.separable_conv2d(x, dw, pw, db, None, 1, 1, 1)
    torch.testing.assert_close(out, reference(x, dw, pw, db, None, 1, 1, 1, None))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_batch_zero(layout):
    x = in_layout(torch.randn(0, 3, 8, 8), layout).requires_grad_()
    dw = torch.randn(6, 1, 3, 3, requires_grad=True)
    pw = torch.randn(4, 6, 1, 1, requires_grad=True)
    db, pb = torch.randn(6, requires_grad=True), torch.randn(4, requires_grad=True)
    out = atrous.separable_conv2d(x, dw, pw, db, pb, 2, 1, 1, "relu")
    assert out.shape == reference(x, dw, pw, db, pb, 2, 1, 1, "relu").shape == (0, 4, 4, 4)
    out.sum().backward()
    assert x.grad.shape == x.shape
    for t in (dw, pw, db, pb):
        assert torch.equal(t.grad, torch.zeros_like(t))


def test_unbatched_input():
    x = torch.randn(3, 9, 11, dtype=torch.float64, requires_grad=True)
    dw = torch.randn(6, 1, 3, 3, dtype=torch.float64)
    pw = torch.randn(2, 6, 1, 1, dtype=torch.float64)
    out = atrous.separable_conv2d(x, dw, pw, None, None, 1, "same", 2, "relu")
    ref = reference(x, dw, pw, None, None, 1, "same", 2, "relu")
    assert out.shape == ref.shape == (2, 9, 11)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(torch.autograd.grad(out.sum(), x)[0], torch.autograd.grad(ref.sum(), x)[0])


def test_activation_edges_follow_torch():
    # Intermediate values exactly at 0 and 6 and NaN: the gradient through relu / relu6 as torch's.
    x = torch.tensor([[[[0.0, 6.0, -1.0, 7.0, float("nan"), 3.0]]]], dtype=torch.float64, requires_grad=True)
    dw = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    pw = torch.full((2, 1, 1, 1), 2.0, dtype=torch.float64)
    for act in ("relu", "relu6"):
        out = atrous.separable_conv2d(x, dw, pw, activation=act)
        ref = reference(x, dw, pw, None, None, 1, 0, 1, act)
        torch.testing.assert_close(out, ref, equal_nan=True)
        g, = torch.autograd.grad(out.sum(), x)
        r, = torch.autograd.grad(ref.sum(), x)
        torch.testing.assert_close(g, r, equal_nan=True)


# --- 8. bad input ------------------------------------------------------------------------------

def _bad_cases():
    x = torch.randn(2, 4, 8, 8)
    dw, pw = torch.randn(4, 1, 3, 3), torch.randn(5, 4, 1, 1)
    return [
        ((x, dw, torch.randn(5, 3, 1, 1)), {}, ValueError, r"pw_weight must have shape \(C_out, C\*m, 1, 1\) with C\*m = "
                                                           r"dw_weight.shape\[0\] = 4 .* got \(5, 3, 1, 1\)"),
        ((x, dw, torch.randn(5, 4, 3, 3)), {}, ValueError, r"\(a 1x1 kernel\), got \(5, 4, 3, 3\)"),
        ((x, dw, torch.randn(5, 4)), {}, ValueError, r"got \(5, 4\)"),
        ((x, dw, pw), dict(activation="gelu"), ValueError, "activation must be None, 'relu' or 'relu6', got 'gelu'"),
        ((x, dw, pw), dict(activation=1), ValueError, "activation must be None, 'relu' or 'relu6', got 1"),
        ((x, dw, pw.double()), {}, TypeError, "pw_weight must have the same dtype as input"),
        ((x, dw, pw), dict(pw_bias=torch.randn(4)), ValueError, r"pw_bias must have shape \(5,\), got \(4,\)"),
        ((x, dw, pw), dict(dw_bias=torch.randn(5)), ValueError, r"dw_bias must have shape \(4,\), got \(5,\)"),
        ((x, torch.randn(6, 1, 3, 3), pw), {}, ValueError, r"dw_weight must have shape \(C\*m, 1, kH, kW\)"),
        ((x, dw, pw.to("meta")), {}, ValueError, "pw_weight must be on the same device as input"),
        ((x, dw, "pw"), {}, TypeError, "pw_weight must be a torch.Tensor, got str"),
        ((x, dw, pw), dict(stride=0), ValueError, r"stride must be in \[1, 2\^31 - 1\], got 0"),
        ((x, dw, pw), dict(padding="same", stride=2), ValueError, "padding='same' is not supported for strided"),
        ((x, torch.randn(4, 1, 11, 3), pw), {}, ValueError, "larger than the padded input"),
        ((x.int(), dw.int(), pw.int()), {}, TypeError, "input must be float32, float64, float16 or bfloat16"),
    ]


def test_bad_inputs_raise_clear_errors_and_change_nothing():
    for args, kwargs, exc, pattern in _bad_cases():
        before = [a.clone() if isinstance(a, torch.Tensor) and a.device.type != "meta" else a for a in args]
        with pytest.raises(exc, match=pattern):
            atrous.separable_conv2d(*args, **kwargs)
        for a, bf in zip(args, before):
            if isinstance(a, torch.Tensor) and a.device.type != "meta":
                assert torch.equal(a, bf)
    x, dw, pw = torch.randn(1, 2, 5, 5), torch.randn(2, 1, 3, 3), torch.randn(3, 2, 1, 1)
    torch.testing.assert_close(atrous.separable_conv2d(x, dw, pw, padding=1),
                               reference(x, dw, pw, None, None, 1, 1, 1, None))


def test_direct_op_calls_are_checked():
    x, dw = torch.randn(2, 4, 8, 8), torch.randn(4, 1, 3, 3)
    with pytest.raises(ValueError, match=r"pw_weight"):
        ops.separable_conv2d(x, dw, torch.randn(5, 3, 1, 1), None, None, [1, 1], [1] * 4, [1, 1], "none")
    with pytest.raises(ValueError, match=r"activation"):
        ops.separable_conv2d(x, dw, torch.randn(5, 4, 1, 1), None, None, [1, 1], [1] * 4, [1, 1], "gelu")
    with pytest.raises(ValueError, match=r"grad_output must have shape \[2, 5, 8, 8\]"):
        ops.separable_conv2d_backward(torch.randn(2, 5, 7, 8), x, dw, torch.randn(5, 4, 1, 1), None, [1, 1], [1] * 4,
                                      [1, 1], "none", [True] * 5)


# --- 9. determinism ----------------------------------------------------------------------------

def determinism_case(layout, N, H, W, stride):
    g = torch.Generator().manual_seed(4)
    x = in_layout(torch.randn(N, 24, H, W, generator=g), layout).requires_grad_()
    dw = torch.randn(48, 1, 5, 5, generator=g).requires_grad_()
    pw = torch.randn(40, 48, 1, 1, generator=g).requires_grad_()
    db, pb = torch.randn(48, generator=g).requires_grad_(), torch.randn(40, generator=g).requires_grad_()
    params = (x, dw, pw, db, pb)
    out_shape = atrous.separable_conv2d(*params, stride, 2, 1, "relu").shape
    go = in_layout(torch.randn(out_shape, generator=g), layout)

    def run():
        out = atrous.separable_conv2d(*params, stride, 2, 1, "relu")
        return (out,) + torch.autograd.grad(out, params, go)

    def plan():
        return ops._separable_conv2d_cpu_plan(x, dw, pw, [stride] * 2, [2] * 4, [1, 1])

    return run, plan


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", ["per-thread", "serial"])
def test_deterministic(layout, threads, shape):
    # Bit for bit the same on every run at one thread count, in either tile order.
    # Per-thread: images too large for one tile, in bands; serial: one image of one tile.
    run, plan = determinism_case(layout, *((4, 60, 200, 1) if shape == "per-thread" else (1, 60, 31, 2)))
    with num_threads(threads):
        if threads > 1:
            assert plan().startswith(shape), plan()
        first = run()
        for r in (run(), run()):
            assert all(torch.equal(a, b) for a, b in zip(first, r))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_per_thread_tiles_do_not_depend_on_the_thread_count(layout):
    # In per-thread order each thread's tiles and the sums' order follow from the shape alone:
    # the same bits at 1, 2 and 3 threads.
    run, plan = determinism_case(layout, 4, 60, 200, 1)
    results, plans = [], set()
    for t in (1, 2, 3):
        with num_threads(t):
            plans.add(plan())
            results.append(run())
    assert len(plans) == 1 and plans.pop().startswith("per-thread")
    for r in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], r))


# --- 10. the module ----------------------------------------------------------------------------

class TwoConvs(torch.nn.Module):
    """The layout of timm's / segmentation_models_pytorch's separable blocks."""

    def __init__(self, cin, cout, k, **kw):
        super().__init__()
        self.depthwise = torch.nn.Conv2d(cin, cin, k, groups=cin, **kw)
        self.pointwise = torch.nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


def test_module_state_dict_interop_with_two_convs():
    two = TwoConvs(6, 10, 3, stride=2, padding=2, dilation=2)
    sep = atrous.nn.SeparableConv2d(6, 10, 3, stride=2, padding=2, dilation=2)
    assert set(sep.state_dict()) == set(two.state_dict())
    sep.load_state_dict(two.state_dict())
    x = torch.randn(2, 6, 15, 16)
    torch.testing.assert_close(sep(x), two(x), atol=1e-5, rtol=1e-5)
    two.load_state_dict(atrous.nn.SeparableConv2d(6, 10, 3).state_dict())
    assert sep.in_channels == 6 and sep.out_channels == 10 and sep.depth_multiplier == 1
    nob = atrous.nn.SeparableConv2d(3, 4, 5, bias=False, depth_multiplier=2, activation="relu6")
    assert nob.depthwise.bias is None and nob.pointwise.bias is None and nob.depthwise.weight.shape == (6, 1, 5, 5)
    assert "relu6" in repr(nob)


def test_module_from_convs_shares_parameters():
    dw = torch.nn.Conv2d(8, 16, 3, padding="same", dilation=2, groups=8, bias=False)
    pw = torch.nn.Conv2d(16, 5, 1)
    sep = atrous.nn.SeparableConv2d.from_convs(dw, pw, activation="relu")
    assert sep.depthwise is dw and sep.pointwise is pw
    x = torch.randn(1, 8, 9, 9)
    torch.testing.assert_close(sep(x), pw(F.relu(dw(x))), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="dw_conv to be depthwise .* groups=1"):
        atrous.nn.SeparableConv2d.from_convs(torch.nn.Conv2d(8, 8, 3), pw)
    with pytest.raises(ValueError, match=r"pw_conv to be a pointwise .* kernel_size=\(3, 3\)"):
        atrous.nn.SeparableConv2d.from_convs(dw, torch.nn.Conv2d(16, 5, 3))
    with pytest.raises(ValueError, match=r"pw_conv.in_channels \(8\) must equal dw_conv.out_channels \(16\)"):
        atrous.nn.SeparableConv2d.from_convs(dw, torch.nn.Conv2d(8, 5, 1))
    with pytest.raises(ValueError, match="padding_mode='zeros' only"):
        atrous.nn.SeparableConv2d.from_convs(torch.nn.Conv2d(8, 8, 3, groups=8, padding_mode="reflect"), pw)
    with pytest.raises(ValueError, match="activation must be"):
        atrous.nn.SeparableConv2d.from_convs(dw, pw, activation="gelu")
    with pytest.raises(TypeError, match="expects pw_conv to be an nn.Conv2d, got Linear"):
        atrous.nn.SeparableConv2d.from_convs(dw, torch.nn.Linear(2, 2))


def test_module_bad_arguments():
    with pytest.raises(ValueError, match="out_channels must be a positive int, got 0"):
        atrous.nn.SeparableConv2d(3, 0, 3)
    with pytest.raises(ValueError, match="activation must be None, 'relu' or 'relu6', got 'tanh'"):
        atrous.nn.SeparableConv2d(3, 4, 3, activation="tanh")


def test_module_trains():
    torch.manual_seed(0)
    sep = atrous.nn.SeparableConv2d(3, 4, 3, padding=1, activation="relu")
    opt = torch.optim.SGD(sep.parameters(), lr=0.1)
    x, target = torch.randn(4, 3, 8, 8), torch.randn(4, 4, 8, 8)
    losses = []
    for _ in range(20):
        loss = F.mse_loss(sep(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]

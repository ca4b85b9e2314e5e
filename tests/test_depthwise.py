"""atrous.depthwise_conv2d against F.conv2d(groups=C), held to ../shared/RELIABILITY.md.

Every test runs on the CPU, and on CUDA when a GPU is present (the `device` fixture)."""

import math
import os
import random
import re
import zlib

import pytest
import torch
import torch.nn.functional as F
from helpers import LAYOUTS, assert_close_all, grads, in_layout, random_padding, RecordOps

import atrous

ops = torch.ops.atrous


def reference(x, w, b, stride, padding, dilation):
    return F.conv2d(x, w, b, stride, padding, dilation, groups=x.shape[-3])


def random_config(rng, big_kernels=False):
    kmax = 31 if big_kernels else 7
    kh, kw = rng.randint(1, kmax), rng.randint(1, kmax)
    stride = (rng.randint(1, 3), rng.randint(1, 3))
    dilation = (rng.randint(1, 6), rng.randint(1, 6)) if not big_kernels else (rng.randint(1, 2), 1)
    padding, (need_h, need_w) = random_padding(rng, (kh, kw), stride, dilation)
    H = need_h + rng.randint(0, 12)
    W = need_w + rng.randint(0, 40)
    return dict(N=rng.randint(1, 3), C=rng.randint(1, 6), m=rng.randint(1, 3), kh=kh, kw=kw, H=H, W=W,
                stride=stride, padding=padding, dilation=dilation, bias=rng.random() < 0.7)


def check_config(cfg, device, layout, dtype=torch.float64, atol=1e-10, rtol=1e-10):
    """Ours in `dtype` on `device` against the reference in float64 on the CPU (so that no
    TF32 or other reduced-precision path of the reference's own device enters the comparison).
    The half types get values they hold exactly, so that only their accumulation and the rounding
    of the results differ from the reference."""
    g = torch.Generator().manual_seed(zlib.crc32(str(cfg).encode()))  # the same on every run
    C, m = cfg["C"], cfg["m"]

    def randn(*shape):
        t = torch.randn(*shape, generator=g, dtype=torch.float64)
        return t.to(dtype).double() if dtype in (torch.float16, torch.bfloat16) else t

    x0 = randn(cfg["N"], C, cfg["H"], cfg["W"])
    w0 = randn(C * m, 1, cfg["kh"], cfg["kw"])
    b0 = randn(C * m) if cfg["bias"] else None
    args = (cfg["stride"], cfg["padding"], cfg["dilation"])

    def leaf(t, dev, dt):
        return None if t is None else t.to(dev, dt).requires_grad_()

    x, w, b = (leaf(t, device, dtype) for t in (x0, w0, b0))
    xr, wr, br = (leaf(t, "cpu", torch.float64) for t in (x0, w0, b0))
    out = atrous.depthwise_conv2d(in_layout(x, layout), w, b, *args)
    ref = reference(xr, wr, br, *args)
    assert out.shape == ref.shape and out.dtype == dtype and out.device.type == torch.device(device).type
    torch.testing.assert_close(out.cpu().double(), ref, atol=atol, rtol=rtol)
    # grad_output in the layout of the input, as the next layer of a network gives it: the backward
    # kernels run in grad_output's layout.
    go = randn(*ref.shape)
    ours = grads(out, (x, w, b), in_layout(go.to(device, dtype), layout))
    assert_close_all([t.cpu().double() for t in ours], grads(ref, (xr, wr, br), go), atol=atol, rtol=rtol)
    return out


# --- 1. random configurations against the reference, forward and every gradient ---------------

@pytest.mark.parametrize("seed", range(40))
def test_random_configs_match_reference(device, seed):
    rng = random.Random(seed)
    cfg = random_config(rng)
    check_config(cfg, device, LAYOUTS[seed % len(LAYOUTS)])


@pytest.mark.parametrize("seed", range(4))
def test_random_large_kernels_match_reference(device, seed):
    rng = random.Random(1000 + seed)
    cfg = random_config(rng, big_kernels=True)
    check_config(cfg, device, ["contiguous", "channels_last"][seed % 2])


# --- 2. every specialised path -----------------------------------------------------------------
# CPU NCHW: rows prepared in phase mode (stride 1: one shifted copy; stride 2: two phases) or expand
# mode (stride 3 with a 1-wide kernel), register blocks of 1, 2 and 4 vectors (row widths <= 16,
# <= 32, > 32), whole planes as one flat row (unit stride, 64 planes or more, rows <= 32 wide or
# a padded pitch well under the row's rounded width), grad_input's phase and expand modes,
# grad_weight's kernel rows at once (widths 3, 5, 7) and per tap (other widths).
# CPU NCHW column sweeps (square kernels 3, 5, 7; unit stride with dilation phases, or stride 2).
# CPU NHWC: blocks of 8 interior pixels, border pixels, channel tails (C not a multiple of 16),
# unit stride's sliding blocks (dilation 1, 2, 3; each column class alone; a row's last block
# overlapping), zero-padded rows for kernels wider than 7 (padding beyond the input's end,
# multiplier 2), pairs of output rows (kernel widths other than 3), channel tails in narrower
# vectors, grad_weight's kernel rows at once (widths 3, 5, 7), grad_input through the flipped
# forward (stride 1, m = 1, padding <= dilated extent) and the general path. CUDA: the tiled
# forward and the direct forward (tiles over 48 KiB), the vector channels_last forward (C a
# multiple of 16 bytes' worth), the row-chunk grad_weight kernels (kernel widths up to 3, 5, 7, 16,
# 32) and the per-tap ones (wider), both layouts of every kernel.
SPECIAL = [
    dict(N=2, C=3, m=1, kh=3, kw=3, H=9, W=70, stride=(1, 1), padding=1, dilation=(1, 1), bias=True),
    dict(N=2, C=3, m=1, kh=3, kw=3, H=9, W=40, stride=(2, 2), padding=1, dilation=(1, 1), bias=True),
    dict(N=1, C=2, m=2, kh=3, kw=1, H=8, W=50, stride=(3, 3), padding=0, dilation=(2, 1), bias=False),
    dict(N=1, C=2, m=1, kh=2, kw=2, H=5, W=12, stride=(1, 1), padding=0, dilation=(1, 1), bias=True),
    dict(N=1, C=2, m=1, kh=2, kw=3, H=5, W=28, stride=(1, 1), padding=1, dilation=(1, 1), bias=True),
    dict(N=2, C=17, m=1, kh=3, kw=3, H=6, W=30, stride=(1, 1), padding=1, dilation=(1, 1), bias=True),
    dict(N=1, C=144, m=1, kh=5, kw=5, H=7, W=24, stride=(1, 1), padding=2, dilation=(1, 1), bias=True),
    dict(N=1, C=40, m=2, kh=3, kw=3, H=6, W=20, stride=(2, 1), padding=(1, 2), dilation=(1, 2), bias=True),
    dict(N=1, C=5, m=1, kh=3, kw=3, H=6, W=9, stride=(1, 1), padding=4, dilation=(1, 1), bias=False),
    dict(N=1, C=33, m=3, kh=7, kw=5, H=9, W=13, stride=(3, 2), padding=(3, 1), dilation=(1, 2), bias=True),
    dict(N=1, C=2, m=1, kh=3, kw=3, H=70, W=70, stride=(1, 1), padding=36, dilation=(36, 36), bias=True),
    dict(N=2, C=20, m=1, kh=3, kw=3, H=5, W=41, stride=(1, 1), padding=2, dilation=(1, 2), bias=True),
    dict(N=1, C=24, m=1, kh=3, kw=5, H=6, W=45, stride=(1, 1), padding=(1, 5), dilation=(1, 3), bias=True),
    dict(N=1, C=20, m=1, kh=9, kw=9, H=12, W=30, stride=(1, 1), padding=6, dilation=(1, 1), bias=True),
    dict(N=1, C=9, m=2, kh=2, kw=11, H=4, W=26, stride=(1, 1), padding=(0, 3), dilation=(2, 1), bias=False),
    dict(N=1, C=16, m=1, kh=17, kw=17, H=20, W=20, stride=(1, 1), padding=8, dilation=(1, 1), bias=True),
    dict(N=1, C=8, m=1, kh=2, kw=40, H=3, W=45, stride=(1, 1), padding=(0, 2), dilation=(1, 1), bias=True),
    dict(N=2, C=40, m=1, kh=5, kw=5, H=11, W=14, stride=(1, 1), padding=2, dilation=(1, 1), bias=True),
    dict(N=1, C=33, m=2, kh=3, kw=4, H=9, W=20, stride=(1, 1), padding="same", dilation=(2, 3), bias=False),
    dict(N=4, C=20, m=1, kh=3, kw=3, H=7, W=25, stride=(1, 1), padding=(0, 4), dilation=(1, 1), bias=True),
    dict(N=2, C=40, m=1, kh=3, kw=3, H=6, W=33, stride=(1, 1), padding=2, dilation=(2, 2), bias=True),
    # NCHW column sweeps: unit stride with rows dH apart (phases), short last sweeps (<= 4 rows
    # and more), stride 2 with its column phases, multiplier 2, row blocks of one plane.
    dict(N=1, C=3, m=1, kh=3, kw=3, H=23, W=28, stride=(1, 1), padding=2, dilation=(3, 2), bias=True),
    dict(N=2, C=2, m=2, kh=5, kw=5, H=13, W=21, stride=(1, 1), padding=2, dilation=(1, 1), bias=True),
    dict(N=1, C=2, m=1, kh=7, kw=7, H=42, W=30, stride=(1, 1), padding=3, dilation=(1, 1), bias=False),
    dict(N=1, C=3, m=1, kh=3, kw=3, H=41, W=64, stride=(2, 2), padding=1, dilation=(1, 1), bias=True),
    dict(N=2, C=2, m=2, kh=5, kw=5, H=19, W=71, stride=(2, 2), padding=2, dilation=(1, 2), bias=True),
    dict(N=2, C=40, m=1, kh=3, kw=3, H=21, W=20, stride=(1, 1), padding=(2, 1), dilation=(2, 1), bias=True),
    dict(N=2, C=36, m=1, kh=3, kw=3, H=37, W=64, stride=(2, 2), padding=1, dilation=(1, 1), bias=False),
    # NHWC: pairs of output rows (kernel widths 5, 7, 9 and 4; unit stride, dilation 1 along H;
    # batches large enough for tasks of several rows) with an odd row left over, dilation along W,
    # channel tails of every narrower width.
    dict(N=8, C=37, m=1, kh=5, kw=5, H=12, W=19, stride=(1, 1), padding=2, dilation=(1, 1), bias=True),
    dict(N=16, C=29, m=1, kh=7, kw=7, H=11, W=30, stride=(1, 1), padding=3, dilation=(1, 2), bias=True),
    dict(N=16, C=15, m=2, kh=9, kw=9, H=14, W=20, stride=(1, 1), padding=4, dilation=(1, 1), bias=False),
    dict(N=8, C=23, m=1, kh=4, kw=4, H=10, W=25, stride=(1, 1), padding=(2, 1), dilation=(1, 1), bias=True),
    # NHWC: dilated interiors too narrow for blocks of 4 in every column class (each class slides
    # alone: classes of 4 and 3 at dilation 6; of 2 after a block of 4 at dilation 3).
    dict(N=2, C=20, m=1, kh=3, kw=3, H=9, W=33, stride=(1, 1), padding=6, dilation=(6, 6), bias=True),
    dict(N=1, C=13, m=2, kh=3, kw=5, H=7, W=30, stride=(1, 1), padding=(1, 6), dilation=(1, 3), bias=True),
]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("idx", range(len(SPECIAL)))
def test_specialised_paths(device, layout, idx):
    check_config(SPECIAL[idx], device, layout)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("idx", range(len(SPECIAL)))
def test_specialised_paths_float32(device, layout, idx):
    # float32 runs vectors of twice as many lanes as float64 (other channel tails, other row
    # roundings); the reference is float64 (on the CPU), the tolerance float32's.
    out = check_config(SPECIAL[idx], device, layout, dtype=torch.float32, atol=1e-4, rtol=1e-4)
    assert out.dtype == torch.float32


# Every path of the CPU planner (csrc/cpu/depthwise/plan.h), each checked against the reference in
# float64 and float32 after checking that the plan names it: (config, layout, plan substrings).
PLAN_CASES = [
    (dict(N=2, C=20, m=1, kh=3, kw=3, H=10, W=10, stride=(1, 1), padding=1, dilation=(1, 1), bias=True),
     "contiguous", ["forward=nchw_channel_tiles(rows)", "backward_input=flipped_forward(nchw_channel_tiles(rows))",
                    "backward_weight=nchw_channel_tiles"]),
    # whole rows with compile-time columns: widths 5, 7, 14 (two passes), 20; kernels 3, 5, 7;
    # strides 1 and 2; kernel rows clipped at the top and bottom
    (dict(N=1, C=20, m=1, kh=7, kw=7, H=6, W=5, stride=(1, 1), padding=3, dilation=(1, 1), bias=True),
     "contiguous", ["forward=nchw_channel_tiles(rows)"]),
    (dict(N=2, C=17, m=1, kh=3, kw=3, H=14, W=14, stride=(2, 2), padding=1, dilation=(1, 1), bias=False),
     "contiguous", ["forward=nchw_channel_tiles(rows)", "backward_input=nchw_channel_tiles"]),
    (dict(N=1, C=33, m=2, kh=5, kw=5, H=9, W=28, stride=(2, 2), padding=2, dilation=(1, 1), bias=True),
     "contiguous", ["forward=nchw_channel_tiles(rows)", "backward_input=nchw_rows"]),
    (dict(N=1, C=16, m=1, kh=7, kw=7, H=20, W=20, stride=(1, 1), padding=3, dilation=(2, 1), bias=True),
     "contiguous", ["forward=nchw_channel_tiles(rows)"]),
    (dict(N=3, C=37, m=1, kh=5, kw=5, H=10, W=9, stride=(2, 2), padding=2, dilation=(1, 1), bias=True),
     "contiguous", ["forward=nchw_channel_tiles backward", "backward_input=nchw_channel_tiles",
                    "backward_weight=nchw_channel_tiles"]),
    (dict(N=1, C=18, m=2, kh=3, kw=2, H=7, W=12, stride=(2, 3), padding=(1, 2), dilation=(2, 1), bias=False),
     "contiguous", ["forward=nchw_channel_tiles", "backward_input=nchw_rows", "backward_weight=nchw_channel_tiles"]),
    (dict(N=1, C=3, m=1, kh=7, kw=7, H=30, W=40, stride=(1, 1), padding=3, dilation=(1, 1), bias=True),
     "contiguous", ["forward=nchw_sweep", "backward_input=flipped_forward(nchw_sweep)",
                    "backward_weight=nchw_rows"]),
    (dict(N=1, C=3, m=1, kh=3, kw=3, H=21, W=64, stride=(2, 2), padding=1, dilation=(1, 1), bias=True),
     "contiguous", ["forward=nchw_sweep", "backward_input=nchw_rows"]),
    # NCHW grad_input at stride 2 on channel tiles beyond the forward's 24 outputs a row, for a
    # tile of channels or more (float64: 8 lanes, float32: 16): 40 outputs a row with a channel
    # tail, 56 of a 5x5 kernel on an odd width, 80 over several bands; 85 outputs stay on the rows
    (dict(N=2, C=20, m=1, kh=3, kw=3, H=17, W=80, stride=(2, 2), padding=1, dilation=(1, 1), bias=True),
     "contiguous", ["forward=nchw_sweep", "backward_input=nchw_channel_tiles"]),
    (dict(N=1, C=16, m=1, kh=5, kw=5, H=12, W=111, stride=(2, 2), padding=2, dilation=(1, 1), bias=False),
     "contiguous", ["backward_input=nchw_channel_tiles"]),
    (dict(N=1, C=16, m=1, kh=3, kw=3, H=40, W=160, stride=(2, 2), padding=1, dilation=(1, 1), bias=True),
     "contiguous", ["backward_input=nchw_channel_tiles"]),
    (dict(N=1, C=16, m=1, kh=3, kw=3, H=9, W=170, stride=(2, 2), padding=1, dilation=(1, 1), bias=True),
     "contiguous", ["backward_input=nchw_rows"]),
    (dict(N=2, C=40, m=1, kh=3, kw=5, H=6, W=30, stride=(1, 1), padding=2, dilation=(1, 1), bias=True),
     "contiguous", ["forward=nchw_flat", "backward_input=flipped_forward(nchw_flat)"]),
    (dict(N=1, C=2, m=1, kh=3, kw=1, H=8, W=100, stride=(3, 3), padding=0, dilation=(2, 1), bias=False),
     "contiguous", ["forward=nchw_rows", "backward_input=nchw_rows", "backward_weight=nchw_rows"]),
    (dict(N=2, C=21, m=1, kh=3, kw=3, H=9, W=10, stride=(1, 1), padding=1, dilation=(1, 1), bias=True),
     "channels_last", ["forward=nhwc_rows", "backward_input=flipped_forward(nhwc_rows)", "backward_weight=nhwc_rows"]),
    # channels_last row passes: left and right edges with interior passes of 8, 4, 2 and 1; channel
    # tails of 8 lanes (half a float32 vector: half-width vectors in float32, masked in bfloat16) and
    # 3 (masked), a full block
    # (wide rows of several blocks: swept column by column over groups of blocks, a tail one last)
    (dict(N=1, C=40, m=1, kh=5, kw=5, H=11, W=40, stride=(2, 2), padding=2, dilation=(1, 1), bias=True),
     "channels_last", ["forward=nhwc_rows+columns", "backward_input=nhwc_phases ", "backward_weight=nhwc_rows"]),
    (dict(N=2, C=16, m=1, kh=7, kw=7, H=9, W=33, stride=(1, 1), padding=3, dilation=(2, 1), bias=False),
     "channels_last", ["forward=nhwc_rows"]),
    (dict(N=1, C=19, m=1, kh=3, kw=3, H=5, W=38, stride=(1, 1), padding=1, dilation=(1, 1), bias=True),
     "channels_last", ["forward=nhwc_rows+columns"]),
    # ... whole rows of 5, 7 and 14 in one pass (each row kind its own code: row_passes.h's
    # with_row_kernel), with masked channel tails
    (dict(N=2, C=19, m=1, kh=3, kw=3, H=5, W=5, stride=(1, 1), padding=1, dilation=(1, 1), bias=True),
     "channels_last", ["forward=nhwc_rows", "backward_input=flipped_forward(nhwc_rows)", "backward_weight=nhwc_rows"]),
    (dict(N=1, C=24, m=1, kh=5, kw=5, H=7, W=7, stride=(1, 1), padding=2, dilation=(1, 1), bias=False),
     "channels_last", ["forward=nhwc_rows", "backward_input=flipped_forward(nhwc_rows)", "backward_weight=nhwc_rows"]),
    (dict(N=2, C=17, m=1, kh=3, kw=3, H=28, W=28, stride=(2, 2), padding=1, dilation=(1, 1), bias=True),
     "channels_last", ["forward=nhwc_rows", "backward_weight=nhwc_rows"]),
    (dict(N=1, C=11, m=1, kh=7, kw=7, H=14, W=14, stride=(1, 1), padding=3, dilation=(1, 1), bias=True),
     "channels_last", ["forward=nhwc_rows", "backward_input=flipped_forward(nhwc_rows)", "backward_weight=nhwc_rows"]),
    (dict(N=2, C=21, m=1, kh=3, kw=3, H=9, W=10, stride=(1, 1), padding=1, dilation=(1, 2), bias=True),
     "channels_last", ["forward=nhwc ", "backward_input=flipped_forward(nhwc)", "backward_weight=nhwc+input"]),
    # ... the weight gradient of many channels (16 blocks and more) in tasks of a few blocks over
    # every image and row, a masked block last: whole rows of 5, stride-2 rows of 10
    (dict(N=2, C=259, m=1, kh=3, kw=3, H=5, W=5, stride=(1, 1), padding=1, dilation=(1, 1), bias=True),
     "channels_last", ["forward=nhwc_rows", "backward_weight=nhwc_rows+blocks"]),
    (dict(N=3, C=300, m=1, kh=3, kw=3, H=9, W=20, stride=(2, 2), padding=1, dilation=(1, 1), bias=False),
     "channels_last", ["forward=nhwc_rows", "backward_weight=nhwc_rows+blocks"]),
    # channels_last row passes on tensors past the cache (3 MiB and more even in bfloat16, 12 MiB at
    # stride 2): each pass prefetches the next output row's input rows (two at stride 2; dilated phases, here of 56
    # outputs, swept column by column) and outputs
    # (the weight gradient in tasks of channel blocks where these are 16 blocks and more: float64
    # with the avx2 kernels' 4 lanes)
    (dict(N=2, C=64, m=1, kh=3, kw=3, H=112, W=112, stride=(1, 1), padding=1, dilation=(1, 1), bias=True),
     "channels_last", ["forward=nhwc_rows+columns", "+prefetch backward_input=flipped_forward(nhwc_rows+columns",
                       re.compile(r"\+prefetch\) backward_weight=nhwc_rows(\+blocks\d+)?\+prefetch$")]),
    (dict(N=8, C=67, m=1, kh=5, kw=5, H=112, W=112, stride=(2, 2), padding=2, dilation=(1, 1), bias=False),
     "channels_last", ["forward=nhwc_rows+columns", "+prefetch backward_input=nhwc_phases+sequential ",
                       re.compile(r"backward_weight=nhwc_rows(\+blocks\d+)?\+prefetch$")]),
    (dict(N=6, C=24, m=1, kh=3, kw=3, H=112, W=112, stride=(1, 1), padding=2, dilation=(2, 2), bias=True),
     "channels_last", ["forward=nhwc_rows+columns", "+prefetch backward_input", "backward_weight=nhwc_rows+prefetch"]),
    # ... and below that, none
    (dict(N=1, C=64, m=1, kh=3, kw=3, H=40, W=40, stride=(1, 1), padding=1, dilation=(1, 1), bias=True),
     "channels_last", ["forward=nhwc_rows+columns", "backward_weight=nhwc_rows"]),
    # NCHW sweeps at stride 2 past the stride-2 threshold prefetch input rows ahead; below, none
    (dict(N=8, C=96, m=1, kh=3, kw=3, H=96, W=96, stride=(2, 2), padding=1, dilation=(1, 1), bias=True),
     "contiguous", ["forward=nchw_sweep+prefetch "]),
    (dict(N=1, C=32, m=1, kh=3, kw=3, H=96, W=96, stride=(2, 2), padding=1, dilation=(1, 1), bias=False),
     "contiguous", ["forward=nchw_sweep "]),
    (dict(N=2, C=21, m=2, kh=3, kw=3, H=9, W=10, stride=(2, 1), padding=1, dilation=(1, 1), bias=True),
     "channels_last", ["forward=nhwc", "backward_input=nhwc ", "backward_weight=nhwc"]),
    # channels_last grad_input by column phases (strides above 1, m = 1): 3x3/2 with blocks of 8,
    # 4, 2 and 1 columns and a channel tail of each narrower width; stride 3 along W with a 7-wide
    # kernel (three phases of 2 or 3 kernel columns, wide edges); stride 2 at dilation 2 with even
    # padding (the odd columns receive from no kernel column: zeros); stride 2 along H only (one
    # phase); a plane narrower than the stride; phases whose interior is empty
    (dict(N=2, C=31, m=1, kh=3, kw=3, H=12, W=61, stride=(2, 2), padding=1, dilation=(1, 1), bias=True),
     "channels_last", ["backward_input=nhwc_phases+pairs "]),
    # ... at stride 2 along W without dilation, 3 wide, the columns inside both phases in pairs of
    # pixels (4 pairs at a time, the rest by phase; 2 vectors of channels at a time where the
    # registers allow, then single vectors, then the tail by phase): padding of either parity
    # (which phase takes which kernel columns), an odd width (a last column of phase 0 alone),
    # stride 3 and dilation along H; past the cache, whole 64-byte vectors of channels go around
    # it (non-temporal stores; test_phase_pairs_stream). 5 and 7 wide stay with the blocks.
    (dict(N=1, C=37, m=1, kh=3, kw=3, H=9, W=40, stride=(2, 2), padding=0, dilation=(1, 1), bias=False),
     "channels_last", ["backward_input=nhwc_phases+pairs "]),
    (dict(N=2, C=48, m=1, kh=5, kw=3, H=10, W=47, stride=(2, 2), padding=1, dilation=(1, 1), bias=True),
     "channels_last", ["backward_input=nhwc_phases+pairs "]),
    (dict(N=1, C=33, m=1, kh=7, kw=7, H=15, W=44, stride=(2, 2), padding=3, dilation=(1, 1), bias=True),
     "channels_last", ["backward_input=nhwc_phases "]),
    (dict(N=1, C=24, m=1, kh=3, kw=3, H=12, W=30, stride=(3, 2), padding=1, dilation=(2, 1), bias=True),
     "channels_last", ["backward_input=nhwc_phases+pairs "]),
    (dict(N=4, C=64, m=1, kh=3, kw=3, H=112, W=112, stride=(2, 2), padding=1, dilation=(1, 1), bias=True),
     "channels_last", [re.compile(r"backward_input=nhwc_phases(\+sequential)?\+pairs(\+stream)? ")]),
    (dict(N=1, C=20, m=1, kh=5, kw=7, H=13, W=40, stride=(2, 3), padding=(2, 3), dilation=(1, 1), bias=False),
     "channels_last", ["backward_input=nhwc_phases"]),
    (dict(N=1, C=16, m=1, kh=3, kw=3, H=11, W=23, stride=(2, 2), padding=2, dilation=(2, 2), bias=True),
     "channels_last", ["backward_input=nhwc_phases"]),
    (dict(N=2, C=9, m=1, kh=3, kw=5, H=10, W=17, stride=(2, 1), padding=(1, 2), dilation=(1, 1), bias=True),
     "channels_last", ["backward_input=nhwc_phases"]),
    (dict(N=1, C=24, m=1, kh=3, kw=3, H=7, W=2, stride=(3, 3), padding=1, dilation=(1, 1), bias=True),
     "channels_last", ["backward_input=nhwc_phases"]),
    (dict(N=1, C=17, m=1, kh=9, kw=9, H=9, W=9, stride=(2, 2), padding=4, dilation=(1, 1), bias=False),
     "channels_last", ["backward_input=nhwc_phases"]),
    # dilated along W at unit stride: row passes over the d interleaved undilated rows (DeepLab's
    # 5x5 d2 on 14x14: two rows of 7, phases of one narrow width, which row_passes.h runs as a row
    # kind of their own), in both layouts; 4 phases of 5; phases of 17 and 16 (edge and interior
    # passes, swept column by column over the blocks) with a masked channel tail; 3 phases of 5;
    # phases of 6 are no pass width
    (dict(N=2, C=20, m=1, kh=5, kw=5, H=14, W=14, stride=(1, 1), padding=4, dilation=(2, 2), bias=True),
     "contiguous", ["forward=nchw_channel_tiles(rows)", "backward_input=flipped_forward(nchw_channel_tiles(rows))",
                    "backward_weight=nchw_channel_tiles(rows)"]),
    (dict(N=1, C=17, m=1, kh=3, kw=3, H=12, W=20, stride=(1, 1), padding=(1, 4), dilation=(1, 4), bias=False),
     "contiguous", ["forward=nchw_channel_tiles(rows)", "backward_weight=nchw_channel_tiles(rows)"]),
    (dict(N=1, C=21, m=1, kh=7, kw=7, H=9, W=33, stride=(1, 1), padding=6, dilation=(2, 2), bias=True),
     "channels_last", ["forward=nhwc_rows+columns", "backward_input=flipped_forward(nhwc_rows+columns",
                       "backward_weight=nhwc_rows"]),
    (dict(N=2, C=20, m=1, kh=5, kw=5, H=14, W=14, stride=(1, 1), padding=4, dilation=(2, 2), bias=False),
     "channels_last", ["forward=nhwc_rows", "backward_weight=nhwc_rows"]),
    (dict(N=1, C=9, m=1, kh=3, kw=3, H=8, W=15, stride=(1, 1), padding=3, dilation=(3, 3), bias=True),
     "channels_last", ["forward=nhwc_rows", "backward_weight=nhwc_rows"]),
    (dict(N=1, C=9, m=1, kh=3, kw=3, H=8, W=12, stride=(1, 1), padding=2, dilation=(2, 2), bias=True),
     "channels_last", ["forward=nhwc ", "backward_weight=nhwc+input"]),
]


def _vector_bytes():
    """The bytes of the CPU kernels' vectors (csrc/cpu/capability.cpp), None for a one-target build."""
    return {"avx512": 64, "avx2": 32}.get(atrous.build_info()["cpu_capability"])


@pytest.mark.parametrize("cache_mib, prefetch", [(0, True), (32, True), (64, True), (128, False), (480, False)])
def test_cpu_prefetch_follows_the_cache(monkeypatch, cache_mib, prefetch):
    # 4 MiB of float32 input: prefetched from 3 MiB, or from a 16th of the last-level cache when
    # that is more (0: not known, 3 MiB); the same choice for the weight gradient.
    monkeypatch.setenv("ATROUS_CPU_CACHE_BYTES", str(cache_mib << 20))
    cfg = dict(N=1, C=64, m=1, kh=3, kw=3, H=128, W=128, stride=(1, 1), padding=1, dilation=(1, 1))
    plan = cpu_plan(cfg, "channels_last", torch.float32)
    forward, _, backward_weight = plan.split()
    assert forward.startswith("forward=nhwc_rows+columns"), plan
    assert forward.endswith("+prefetch") == prefetch, plan
    assert (backward_weight == "backward_weight=nhwc_rows+prefetch") == prefetch, plan


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("C", [64, 72])
def test_phase_pairs_stream(monkeypatch, dtype, C):
    # channels_last grad_input in pairs of pixels goes around the cache (non-temporal stores) from
    # the stream threshold (3 MiB with a 32 MiB cache), where the kernels' vectors are 64 bytes
    # (AVX-512), for float32 and float64 whose pixels are whole vectors; the bits are those of the
    # cached stores. (8, C, 80, 80): 13 MB in float32, past 12 MiB also one column at a time.
    cfg = dict(N=8, C=C, m=1, kh=3, kw=3, H=80, W=80, stride=(2, 2), padding=1, dilation=(1, 1))
    whole_vectors = C * dtype.itemsize % 64 == 0
    expect = _vector_bytes() == 64 and dtype in (torch.float32, torch.float64) and whole_vectors
    monkeypatch.setenv("ATROUS_CPU_CACHE_BYTES", str(32 << 20))
    _, backward_input, _ = cpu_plan(cfg, "channels_last", dtype).split()
    sequential = dtype != torch.bfloat16  # 6.6 MB in bfloat16: under the threshold
    assert backward_input.startswith("backward_input=nhwc_phases" + "+sequential" * sequential + "+pairs"), \
        backward_input
    assert backward_input.endswith("+stream") == expect, backward_input
    g = torch.Generator().manual_seed(C)
    x = torch.randn(8, C, 80, 80, generator=g, dtype=torch.float64).to(dtype).contiguous(
        memory_format=torch.channels_last)
    w = torch.randn(C, 1, 3, 3, generator=g, dtype=torch.float64).to(dtype)
    go = torch.randn(8, C, 40, 40, generator=g, dtype=torch.float64).to(dtype).contiguous(
        memory_format=torch.channels_last)
    mask = [True, False, False]
    streamed = ops.depthwise_conv2d_backward(go, x, w, [2, 2], [1] * 4, [1, 1], mask)[0]
    monkeypatch.setenv("ATROUS_CPU_CACHE_BYTES", str(1 << 30))  # a threshold of 256 MiB: cached stores
    assert not cpu_plan(cfg, "channels_last", dtype).split()[1].endswith("+stream")
    cached = ops.depthwise_conv2d_backward(go, x, w, [2, 2], [1] * 4, [1, 1], mask)[0]
    assert torch.equal(streamed, cached)
    ref = torch.ops.aten.convolution_backward(go.double(), x.double(), w.double(), None, [2, 2], [1, 1], [1, 1],
                                              False, [0, 0], C, mask)[0]
    tol = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(streamed.double(), ref, atol=tol * 10, rtol=tol)


@pytest.mark.parametrize("N, forward_prefetch", [(2, False), (4, True)])
def test_cpu_prefetch_at_stride_two_from_four_times_the_threshold(monkeypatch, N, forward_prefetch):
    # Stride-2 rows: the forward prefetches from 4x the threshold (12 MiB with a 32 MiB cache), the
    # weight gradient from the threshold itself. (N, 67, 112, 112) float32: 6.7 MB per 2 images.
    monkeypatch.setenv("ATROUS_CPU_CACHE_BYTES", str(32 << 20))
    cfg = dict(N=N, C=67, m=1, kh=3, kw=3, H=112, W=112, stride=(2, 2), padding=1, dilation=(1, 1))
    forward, _, backward_weight = cpu_plan(cfg, "channels_last", torch.float32).split()
    assert forward.endswith("+prefetch") == forward_prefetch, forward
    assert backward_weight.endswith("+prefetch"), backward_weight


def _sysfs_last_level_cache_bytes():
    """The size of the highest data cache level that Linux lists for cpu0 (None where it lists none)."""
    best = (0, None)
    base = "/sys/devices/system/cpu/cpu0/cache"
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        try:
            with open(f"{base}/{entry}/level") as f:
                level = int(f.read())
            with open(f"{base}/{entry}/type") as f:
                kind = f.read().strip()
            with open(f"{base}/{entry}/size") as f:
                size = f.read().strip()
        except (OSError, ValueError):
            continue
        value = int(size.rstrip("KM")) << {"K": 10, "M": 20}.get(size[-1], 0)
        if kind != "Instruction" and level > best[0] and value > 0:
            best = (level, value)
    return best[1]


def test_cpu_prefetch_follows_the_cache_linux_reports(monkeypatch):
    # Without ATROUS_CPU_CACHE_BYTES the plan takes the last-level cache that cpu0 shares from sysfs
    # (not sysconf, which reports a whole socket's L3 on some AMD EPYCs): inputs of 3 MiB and more,
    # and of a 16th of that cache, prefetch.
    llc = _sysfs_last_level_cache_bytes()
    if llc is None:
        pytest.skip("no cache sizes in /sys/devices/system/cpu/cpu0/cache")
    monkeypatch.delenv("ATROUS_CPU_CACHE_BYTES", raising=False)
    for mib in (4, 8, 16, 32):
        side = int(((mib << 20) // (64 * 4)) ** 0.5)  # 64 float32 channels, side x side pixels
        cfg = dict(N=1, C=64, m=1, kh=3, kw=3, H=side, W=side, stride=(1, 1), padding=1, dilation=(1, 1))
        nbytes = 64 * 4 * side * side
        forward = cpu_plan(cfg, "channels_last", torch.float32).split()[0]
        assert forward.endswith("+prefetch") == (nbytes >= max(3 << 20, llc // 16)), (mib, llc, forward)


@pytest.mark.skipif(_vector_bytes() is None, reason="vector width of a one-target build")
@pytest.mark.parametrize("C, k, s, H, dil, dtype", [
    (96, 3, 1, 56, 1, torch.float32), (240, 3, 1, 56, 1, torch.float32), (96, 7, 2, 56, 1, torch.float32),
    (96, 5, 2, 112, 1, torch.float64), (120, 5, 1, 28, 1, torch.bfloat16),
    (16, 3, 1, 56, 1, torch.float32), (96, 3, 1, 14, 1, torch.float32), (96, 3, 1, 56, 2, torch.float32),
    (728, 3, 1, 33, 2, torch.float32), (96, 3, 1, 56, 4, torch.float32)])
def test_cpu_row_columns_group_blocks(C, k, s, H, dil, dtype):
    # A sweep's kernel rows of a pass of 8 (k x (7 s + k) pixels a block) stay within 24 KB of
    # input: as many blocks a group as fit, at least one, at most all; a narrow row (14) goes block
    # by block, and so does a row dilated along W whose phases are narrow (56 / 4 = 14).
    cfg = dict(N=1, C=C, m=1, kh=k, kw=k, H=H, W=H, stride=(s, s), padding=(k - 1) // 2 * dil, dilation=(dil, dil))
    forward = cpu_plan(cfg, "channels_last", dtype).split()[0].removesuffix("+prefetch")  # as the cache says
    element = torch.empty((), dtype=dtype).element_size()
    lanes = _vector_bytes() // (8 if element == 8 else 4)
    blocks = -(-C // lanes)
    group = min(blocks, max(1, 24 * 1024 // (k * (7 * s + k) * lanes * element)))
    if -(-(H // s) // dil) < 16 or group == 1:
        assert forward == "forward=nhwc_rows", forward
    else:
        assert forward == f"forward=nhwc_rows+columns{group}", forward


@pytest.mark.skipif(_vector_bytes() is None, reason="vector width of a one-target build")
@pytest.mark.parametrize("C, H, dtype", [
    (960, 5, torch.float32), (576, 10, torch.float32), (240, 10, torch.float32), (256, 20, torch.float32),
    (128, 7, torch.float64), (120, 7, torch.float64), (1152, 5, torch.bfloat16), (32, 56, torch.float32)])
def test_cpu_weight_gradient_tasks_split_channels(C, H, dtype):
    # channels_last weight gradient: with 16 channel blocks or more, 32 tasks or fewer of
    # ceil(blocks / 32) blocks each (no per-task sums to add); with fewer, tasks of row bands.
    cfg = dict(N=8, C=C, m=1, kh=3, kw=3, H=H, W=H, stride=(1, 1), padding=1, dilation=(1, 1))
    backward_weight = cpu_plan(cfg, "channels_last", dtype).split()[2].removesuffix("+prefetch")  # as the cache says
    lanes = _vector_bytes() // (8 if dtype == torch.float64 else 4)
    blocks = -(-C // lanes)
    if blocks >= 16:
        assert backward_weight == f"backward_weight=nhwc_rows+blocks{-(-blocks // 32)}", backward_weight
    else:
        assert backward_weight == "backward_weight=nhwc_rows", backward_weight


def cpu_plan(cfg, layout, dtype=torch.float64):
    x = in_layout(torch.zeros(cfg["N"], cfg["C"], cfg["H"], cfg["W"], dtype=dtype), layout)
    w = torch.zeros(cfg["C"] * cfg["m"], 1, cfg["kh"], cfg["kw"], dtype=dtype)
    pad = cfg["padding"] if isinstance(cfg["padding"], tuple) else (cfg["padding"],) * 2
    return ops._depthwise_conv2d_cpu_plan(x, w, list(cfg["stride"]), [pad[0], pad[1], pad[0], pad[1]],
                                          list(cfg["dilation"]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("idx", range(len(PLAN_CASES)))
def test_every_cpu_plan_path(device, idx, dtype, monkeypatch):
    # The prefetch threshold is 3 MiB or a 16th of the last-level cache, whichever is more: these
    # cases are planned as for a 32 MiB cache, whatever this CPU's.
    monkeypatch.setenv("ATROUS_CPU_CACHE_BYTES", str(32 << 20))
    cfg, layout, names = PLAN_CASES[idx]
    plan = cpu_plan(cfg, layout, dtype)
    for name in names:  # a substring of the plan's name, or a pattern it matches
        assert (name.search(plan) if isinstance(name, re.Pattern) else name in plan), (name, plan)
    tol = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 2e-2}[dtype]
    check_config(cfg, device, layout, dtype=dtype, atol=tol * (cfg["H"] * cfg["W"]) ** 0.5, rtol=tol)


# --- 3. half types ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("shape", [(2, 20, 10, 10), (1, 37, 6, 40)])
def test_half_results_round_to_nearest_even(device, dtype, layout, shape):
    # One tap of weight 1 + 2^-7 (exact in both types): every float32 result is exact, so ours
    # must be that value rounded as torch rounds (to nearest even; NaN stays NaN), bit for bit
    # (the vector conversions of the channel tiles and row passes, masked channel tails).
    g = torch.Generator().manual_seed(11)
    x = torch.randn(*shape, generator=g).to(dtype)
    x[0, 0, 0, :3] = float("nan")
    w = torch.zeros(shape[1], 1, 3, 3)
    w[:, :, 1, 1] = 1 + 2 ** -7
    w = w.to(dtype)
    exact = F.conv2d(x.float(), w.float(), None, 1, 1, 1, shape[1])
    ours = atrous.depthwise_conv2d(in_layout(x.to(device), layout), w.to(device), None, 1, 1, 1)
    want = exact.to(dtype)
    assert torch.equal(ours.cpu().isnan(), want.isnan())
    assert torch.equal(ours.cpu().nan_to_num(), want.nan_to_num())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_integer_valued_half_is_exact(device, dtype, layout):
    # Small integers: every product and partial sum is exact in float32 accumulation, and the
    # results (|y| <= 2 * 9 * 4 + 3 < 256) are exact in float16 and bfloat16.
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-2, 3, (2, 6, 11, 37), generator=g).double()
    w = torch.randint(-2, 3, (12, 1, 3, 3), generator=g).double()
    b = torch.randint(-3, 4, (12,), generator=g).double()
    ref = reference(x, w, b, 1, 1, 1)
    out = atrous.depthwise_conv2d(in_layout(x.to(device, dtype), layout), w.to(device, dtype),
                                  b.to(device, dtype), 1, 1, 1)
    assert out.dtype == dtype
    assert torch.equal(out.double().cpu(), ref)
    # Gradients too: grad_output of small integers.
    xg = x.to(device, dtype).requires_grad_()
    wg = w.to(device, dtype).requires_grad_()
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    go = torch.randint(-2, 3, ref.shape, generator=g).double()
    gi, gw = torch.autograd.grad(atrous.depthwise_conv2d(in_layout(xg, layout), wg, None, 1, 1, 1),
                                 (xg, wg), go.to(device, dtype))
    ri, rw = torch.autograd.grad(reference(xr, wr, None, 1, 1, 1), (xr, wr), go)
    assert torch.equal(gi.double().cpu(), ri)
    # Weight-gradient sums reach |2*2*2*N*H*W| = 3256 > 2048: exact in float32, rounded when
    # stored in half types; compare with the correctly rounded value.
    assert torch.equal(gw.cpu(), rw.to(dtype))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("k", [3, 7, 15])
def test_random_half_within_tolerance(device, dtype, k):
    g = torch.Generator().manual_seed(k)
    x = torch.randn(2, 8, 20, 23, generator=g)
    w = torch.randn(16, 1, k, k, generator=g) / k
    b = torch.randn(16, generator=g)
    ref = reference(x.double(), w.double(), b.double(), 1, k // 2, 1)
    out = atrous.depthwise_conv2d(x.to(device, dtype), w.to(device, dtype), b.to(device, dtype), 1, k // 2, 1)
    eps = torch.finfo(dtype).eps
    # inputs rounded to dtype (relative eps/2 each), fp32 accumulation, output rounded once.
    tol = 4 * eps * math.sqrt(k * k) * (1 + ref.abs().max().item())
    assert (out.double().cpu() - ref).abs().max().item() <= tol


# --- 5-8. gradients ----------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("stride,padding,dilation,m", [(1, 1, 1, 1), (2, (1, 2), (2, 1), 2), (1, "same", 2, 1)])
def test_gradcheck_and_gradgradcheck(device, layout, stride, padding, dilation, m):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64).to(device).requires_grad_()
    w = torch.randn(3 * m, 1, 3, 2, generator=g, dtype=torch.float64).to(device).requires_grad_()
    b = torch.randn(3 * m, generator=g, dtype=torch.float64).to(device).requires_grad_()

    def f(x, w, b):
        return atrous.depthwise_conv2d(in_layout(x, layout), w, b, stride, padding, dilation)

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


@pytest.mark.parametrize("which", [(True, False, False), (False, True, False), (False, False, True),
                                   (True, True, False), (False, True, True), (True, False, True)])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_partial_requires_grad(device, which, layout):
    # Each gradient is bit for bit the same whichever others are asked for (the weight and bias
    # gradients come from one fused op when both are needed, from their own ops otherwise).
    g = torch.Generator().manual_seed(1)
    x0 = in_layout(torch.randn(2, 4, 9, 10, generator=g, dtype=torch.float64, device="cpu").to(device), layout)
    w0 = torch.randn(8, 1, 3, 3, generator=g, dtype=torch.float64).to(device)
    b0 = torch.randn(8, generator=g, dtype=torch.float64).to(device)
    full = [t.clone().requires_grad_() for t in (x0, w0, b0)]
    part = [t.clone().requires_grad_(r) for t, r in zip((x0, w0, b0), which)]
    go = in_layout(torch.randn(2, 8, 9, 10, dtype=torch.float64).to(device), layout)
    gf = torch.autograd.grad(atrous.depthwise_conv2d(*full, 1, 1, 1), full, go)
    gp = torch.autograd.grad(atrous.depthwise_conv2d(*part, 1, 1, 1), [t for t in part if t.requires_grad], go)
    expected = [g_ for g_, r in zip(gf, which) if r]
    assert_close_all(gp, expected, atol=0, rtol=0)


@pytest.mark.parametrize("needs, mask", [
    ("w", [False, True, False]),
    ("wb", [False, True, True]),
    ("b", [False, False, True]),
    ("xb", [True, False, True]),
    ("xw", [True, True, False]),
    ("xwb", [True, True, True]),
    ("x", [True, False, False]),
])
def test_backward_is_one_op_with_the_needed_mask(device, needs, mask):
    x = torch.randn(1, 2, 5, 5, device=device, requires_grad="x" in needs)
    w = torch.randn(2, 1, 3, 3, device=device, requires_grad="w" in needs)
    b = torch.randn(2, device=device, requires_grad=True) if "b" in needs else None
    out = atrous.depthwise_conv2d(x, w, b, 1, 1, 1)
    with RecordOps() as rec:
        out.sum().backward()
    ran = [args for func, args in rec.calls if func is ops.depthwise_conv2d_backward.default]
    assert len(ran) == 1 and list(ran[0][-1]) == mask


MASKS = [[a, b_, c] for a in (False, True) for b_ in (False, True) for c in (False, True) if a or b_ or c]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_backward_gradients_do_not_depend_on_the_mask(device, layout, dtype):
    # Each gradient is bit for bit the same whichever others are asked for (on the CPU the fused
    # passes: channels_last grad_input with the weight gradient for unit stride and m = 1 (3x3,
    # 5x5 with row pairs, 31x31 with padded rows, dilation, images whose rows straddle the chunks),
    # the weight gradient with the bias gradient; the other shapes through separate kernels); an
    # unrequested gradient is an empty tensor; the bias gradient is the channel sum of grad_output.
    g = torch.Generator().manual_seed(7)
    for (n, c, m, h, w, kh, kw, s, p, d) in [(3, 21, 1, 7, 30, 3, 3, 1, 1, 1), (2, 40, 1, 11, 19, 5, 5, 1, 2, 1),
                                             (1, 18, 1, 9, 40, 31, 31, 1, 15, 1), (2, 20, 1, 9, 33, 3, 3, 1, 6, 6),
                                             (2, 17, 1, 12, 14, 3, 5, 1, (0, 1), 1), (3, 21, 2, 13, 70, 5, 5, 2, 2, 1),
                                             (2, 6, 1, 9, 10, 3, 3, 2, 1, 1), (1, 5, 2, 8, 9, 3, 3, 1, 1, 1),
                                             (2, 70, 1, 6, 150, 3, 3, 1, 2, 2), (4, 40, 1, 10, 10, 3, 3, 2, 1, 1)]:
        x = in_layout(torch.randn(n, c, h, w, generator=g).to(device, dtype), layout)
        wt = torch.randn(c * m, 1, kh, kw, generator=g).to(device, dtype)
        pad = [p, p, p, p] if isinstance(p, int) else [p[0], p[1], p[0], p[1]]
        geometry = ([s, s], pad, [d, d])
        go = in_layout(torch.randn_like(ops.depthwise_conv2d(x, wt, None, *geometry)), layout)
        full = ops.depthwise_conv2d_backward(go, x, wt, *geometry, [True, True, True])
        assert full[0].shape == x.shape and full[0].stride() == x.stride()
        for mask in MASKS:
            got = ops.depthwise_conv2d_backward(go, x, wt, *geometry, mask)
            for t, f, wanted in zip(got, full, mask):
                assert torch.equal(t, f) if wanted else t.shape == (0,)
        tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-2}[dtype]
        torch.testing.assert_close(full[2].double(), go.double().sum((0, 2, 3)), atol=tol * go.numel() ** 0.5,
                                   rtol=tol)
        if device == "cpu":  # one summation order for the bias in every layout
            for go_layout in ("contiguous", "channels_last"):
                got = ops.depthwise_conv2d_backward(in_layout(go, go_layout), x, wt, *geometry, [False, False, True])
                assert torch.equal(got[2], full[2])


def test_bias_grad_same_bits_in_every_layout_with_large_groups(device):
    # rows * channels past 2^22: groups of more than 4 rows (csrc/cpu/depthwise.cpp, bias_group_rows).
    if device != "cpu":
        pytest.skip("the CPU kernels' summation order")
    g = torch.Generator().manual_seed(6)
    x = torch.randn(1, 1024, 4103, 1, generator=g).to(device)
    wt = torch.randn(1024, 1, 1, 1, generator=g).to(device)
    go = torch.randn(1, 1024, 4103, 1, generator=g).to(device)
    sums = []
    for layout in ("contiguous", "channels_last"):
        for mask in ([False, False, True], [False, True, True]):
            sums.append(ops.depthwise_conv2d_backward(in_layout(go, layout), in_layout(x, layout), wt, [1, 1],
                                                      [0] * 4, [1, 1], mask)[2])
    for s in sums[1:]:
        assert torch.equal(s, sums[0])
    torch.testing.assert_close(sums[0].double(), go.double().sum((0, 2, 3)), atol=1e-3, rtol=1e-5)


def test_weight_grad_of_batch_is_sum_over_chunks(device):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 5, 13, 17, generator=g, dtype=torch.float64).to(device)
    w = torch.randn(10, 1, 5, 3, generator=g, dtype=torch.float64).to(device)
    go = torch.randn(6, 10, 6, 8, generator=g, dtype=torch.float64).to(device)
    mask = [False, True, False]
    full = ops.depthwise_conv2d_backward(go, x, w, [2, 2], [1, 1, 1, 1], [1, 2], mask)[1]
    chunks = sum(ops.depthwise_conv2d_backward(go[i:i + 2], x[i:i + 2], w, [2, 2], [1, 1, 1, 1], [1, 2], mask)[1]
                 for i in range(0, 6, 2))
    torch.testing.assert_close(full, chunks, atol=1e-12, rtol=1e-12)


# --- 7. opcheck --------------------------------------------------------------------------------

def _opcheck_samples(device):
    g = torch.Generator().manual_seed(3)
    for layout in ["contiguous", "channels_last"]:
        for rg in [False, True]:
            x = in_layout(torch.randn(2, 3, 8, 9, generator=g).to(device), layout).requires_grad_(rg)
            w = torch.randn(6, 1, 3, 3, generator=g).to(device).requires_grad_(rg)
            b = torch.randn(6, generator=g).to(device).requires_grad_(rg)
            yield ops.depthwise_conv2d.default, (x, w, b, [1, 2], [1, 0, 2, 1], [1, 1])
            yield ops.depthwise_conv2d.default, (x, w, None, [2, 1], [0, 0, 0, 0], [2, 1])
            go = in_layout(torch.randn(2, 6, 8, 9, generator=g).to(device), layout).requires_grad_(rg)
            x3 = in_layout(torch.randn(2, 6, 8, 9, generator=g).to(device), layout).requires_grad_(rg)
            for mask in MASKS:
                yield ops.depthwise_conv2d_backward.default, (go, x3, w, [1, 1], [1, 1, 1, 1], [1, 1], mask)
            go2 = in_layout(torch.randn(2, 6, 4, 9, generator=g).to(device), layout).requires_grad_(rg)
            yield ops.depthwise_conv2d_backward.default, (go2, x3, w, [2, 1], [1, 1, 1, 1], [1, 1], [True] * 3)


def test_opcheck(device):
    for op, args in _opcheck_samples(device):
        torch.library.opcheck(op, args)


def test_fake_kernel_matches_real_strides(device):
    from torch._subclasses.fake_tensor import FakeTensorMode

    for op, args in _opcheck_samples(device):
        real = op(*args)
        with FakeTensorMode() as mode:
            fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
            fake = op(*fake_args)
        for r, f in zip(*((t,) if isinstance(t, torch.Tensor) else t for t in (real, fake)), strict=True):
            assert f.shape == r.shape and f.stride() == r.stride() and f.dtype == r.dtype


# --- 9. layouts --------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_output_memory_format_follows_torch(device, layout):
    x = in_layout(torch.randn(2, 4, 10, 12, device=device), layout)
    w = torch.randn(4, 1, 3, 3, device=device)
    out = atrous.depthwise_conv2d(x, w, None, 1, 1, 1)
    ref = reference(x, w, None, 1, 1, 1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    cl = torch.channels_last
    assert out.is_contiguous(memory_format=cl) == ref.is_contiguous(memory_format=cl)
    assert out.is_contiguous() == ref.is_contiguous()


def test_expanded_and_noncontiguous_weight_and_bias(device):
    x = torch.randn(2, 4, 10, 12, device=device, dtype=torch.float64)
    w = torch.randn(1, 1, 3, 3, device=device, dtype=torch.float64).expand(4, 1, 3, 3)  # stride 0
    b = torch.randn(8, device=device, dtype=torch.float64)[::2]
    torch.testing.assert_close(atrous.depthwise_conv2d(x, w, b, 1, 1, 1), reference(x, w, b, 1, 1, 1))
    wt = torch.randn(4, 1, 3, 5, device=device, dtype=torch.float64).transpose(2, 3)
    torch.testing.assert_close(atrous.depthwise_conv2d(x, wt, None, 1, 1, 1), reference(x, wt, None, 1, 1, 1))


# --- 12-14. edge shapes ------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_batch_zero(device, layout):
    x = in_layout(torch.randn(0, 3, 8, 8, device=device), layout).requires_grad_()
    w = torch.randn(6, 1, 3, 3, device=device, requires_grad=True)
    b = torch.randn(6, device=device, requires_grad=True)
    out = atrous.depthwise_conv2d(x, w, b, 2, 1, 1)
    assert out.shape == reference(x, w, b, 2, 1, 1).shape == (0, 6, 4, 4)
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.equal(b.grad, torch.zeros_like(b))


def test_batch_zero_with_empty_planes_follows_torch(device):
    x = torch.randn(0, 2, 0, 0, device=device)
    w = torch.randn(2, 1, 1, 1, device=device)
    assert atrous.depthwise_conv2d(x, w, None, 1, 1, 1).shape == reference(x, w, None, 1, 1, 1).shape == (0, 2, 2, 2)
    with pytest.raises(ValueError, match="non-zero height and width unless the batch is empty"):
        atrous.depthwise_conv2d(torch.randn(1, 2, 0, 3, device=device), w, None, 1, 1, 1)


def test_unbatched_input(device):
    x = torch.randn(3, 9, 11, device=device, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 1, 3, 3, device=device, dtype=torch.float64)
    out = atrous.depthwise_conv2d(x, w, None, 1, "same", 2)
    ref = F.conv2d(x, w, None, 1, "same", 2, groups=3)
    assert out.shape == ref.shape == (6, 9, 11)
    torch.testing.assert_close(out, ref)
    gx, = torch.autograd.grad(out.sum(), x)
    rx, = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(gx, rx)


def test_kernel_as_large_as_padded_input(device):
    x = torch.randn(1, 2, 5, 6, device=device, dtype=torch.float64)
    w = torch.randn(2, 1, 7, 8, device=device, dtype=torch.float64)
    out = atrous.depthwise_conv2d(x, w, None, 1, 1, 1)
    assert out.shape == (1, 2, 1, 1)
    torch.testing.assert_close(out, reference(x, w, None, 1, 1, 1))
    with pytest.raises(ValueError, match=r"dilated kernel \(7x9.*larger than the padded input \(7x8"):
        atrous.depthwise_conv2d(x, torch.randn(2, 1, 7, 9, device=device, dtype=torch.float64), None, 1, 1, 1)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("w,k,pad,stride", [(1, 7, 3, 1), (2, 7, 3, 1), (1, 5, 2, 1), (3, 7, (3, 3), 2), (1, 3, 1, 1)])
def test_rows_narrower_than_the_left_padding(device, layout, w, k, pad, stride):
    # The padding before the first column covers the whole output row: no column reads all of
    # its taps (channels_last: the row pairs of 5x5 and 7x7 once wrote past the row here).
    x = in_layout(torch.randn(2, 5, 23, w, device=device, dtype=torch.float64), layout).requires_grad_()
    wt = torch.randn(5, 1, k, k, device=device, dtype=torch.float64, requires_grad=True)
    out = atrous.depthwise_conv2d(x, wt, None, stride, pad, 1)
    ref = reference(x, wt, None, stride, pad, 1)
    torch.testing.assert_close(out, ref)
    go = torch.randn_like(ref)
    assert_close_all(torch.autograd.grad(out, (x, wt), go), torch.autograd.grad(ref, (x, wt), go))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_nchw_stride_two_rows_of_every_width(device, dtype, k):
    # NCHW stride 2: each input row is split into its even and odd columns in one pass, a pair of
    # vectors at a time, the loads masked past the row's end (the phases' padding there), the
    # columns before column 0 one by one. Widths on both sides of one and several vector pairs,
    # every padding up to k // 2 (the column sweep past 24 outputs, rows below); forward, and the
    # weight gradient that prepares the same rows.
    g = torch.Generator().manual_seed(k)
    for width in [1, 2, 3, 5, 8, 15, 16, 17, 31, 32, 33, 34, 47, 63, 64, 65, 66, 97, 130]:
        for pad in range(k // 2 + 1):
            if width + 2 * pad < k:
                continue
            x = torch.randn(2, 3, k + 3, width, generator=g, dtype=torch.float64)
            w = torch.randn(3, 1, k, k, generator=g, dtype=torch.float64) / k
            b = torch.randn(3, generator=g, dtype=torch.float64)
            ref = reference(x, w, b, 2, pad, 1)
            out = atrous.depthwise_conv2d(x.to(device, dtype), w.to(device, dtype), b.to(device, dtype), 2, pad, 1)
            tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 3e-2}[dtype] * k
            torch.testing.assert_close(out.double().cpu(), ref, atol=tol, rtol=tol, msg=f"width {width} pad {pad}")
            if dtype == torch.float64:
                xs = x.to(device).requires_grad_()
                ws = w.to(device).requires_grad_()
                go = torch.randn(ref.shape, generator=g, dtype=torch.float64).to(device)
                ours = torch.autograd.grad(atrous.depthwise_conv2d(xs, ws, None, 2, pad, 1), (xs, ws), go)
                theirs = torch.autograd.grad(reference(xs, ws, None, 2, pad, 1), (xs, ws), go)
                assert_close_all(ours, theirs)


@pytest.mark.parametrize("kw", [3, 5, 7])
def test_nchw_tile_grad_input_at_stride_two_along_w(kw):
    # The channel tiles' grad_input, stride 2 along W: the columns whose taps all lie inside
    # grad_output go in pairs of one column of each parity, their weights in registers; the others
    # by listed taps. Widths odd and even, every padding up to kw // 2 (the first interior column of
    # either parity), row strides 1 and 2, kernel heights 1 and 3; float64 against the reference,
    # and float32 bitwise run to run.
    g = torch.Generator().manual_seed(kw)
    for width in [kw, kw + 1, 9, 12, 20, 23]:
        for pad in range(kw // 2 + 1):
            for kh, sh in [(3, 2), (1, 1), (3, 1)]:
                x = torch.randn(2, 5, 7, width, generator=g, dtype=torch.float64)
                w = torch.randn(5, 1, kh, kw, generator=g, dtype=torch.float64)
                stride, padding = (sh, 2), (kh // 2, pad)
                plan = ops._depthwise_conv2d_cpu_plan(x, w, list(stride), [kh // 2, pad, kh // 2, pad], [1, 1])
                assert "backward_input=nchw_channel_tiles " in plan, plan
                xs = x.clone().requires_grad_()
                out = atrous.depthwise_conv2d(xs, w, None, stride, padding)
                go = torch.randn(out.shape, generator=g, dtype=torch.float64)
                got, = torch.autograd.grad(out, xs, go)
                xr = x.clone().requires_grad_()
                want, = torch.autograd.grad(reference(xr, w, None, stride, padding, 1), xr, go)
                torch.testing.assert_close(got, want, msg=f"width {width} pad {pad} kernel {kh}x{kw} stride {stride}")
                x32, w32, go32 = x.float().requires_grad_(), w.float(), go.float()
                runs = [torch.autograd.grad(atrous.depthwise_conv2d(x32, w32, None, stride, padding), x32, go32)[0]
                        for _ in range(2)]
                assert torch.equal(runs[0], runs[1])


def test_huge_stride_and_dilation(device):
    x = torch.randn(1, 2, 5, 6, device=device)
    w = torch.randn(2, 1, 3, 3, device=device)
    big = 2**31 - 1
    out = atrous.depthwise_conv2d(x, w, None, big, 1, 1)
    torch.testing.assert_close(out, reference(x, w, None, big, 1, 1))
    with pytest.raises(ValueError, match="dilated kernel"):
        atrous.depthwise_conv2d(x, w, None, 1, 1, big)
    with pytest.raises(ValueError, match=r"stride must be in \[1, 2\^31 - 1\], got 2147483648"):
        atrous.depthwise_conv2d(x, w, None, 2**31, 1, 1)
    # Direct op calls are checked in C++ too.
    with pytest.raises(RuntimeError, match="stride must be in"):
        ops.depthwise_conv2d(x, w, None, [0, 1], [0, 0, 0, 0], [1, 1])
    with pytest.raises(RuntimeError, match="dilated kernel"):
        ops.depthwise_conv2d(x, w, None, [1, 1], [0, 0, 0, 0], [big, 1])
    # Dilation and padding far past a small plane: every tap but the centre's in the padding (the
    # planner keeps such windows off the channel tiles, whose tile would span the padding).
    huge = 2**20
    out = atrous.depthwise_conv2d(x, w, None, 1, huge, huge)
    torch.testing.assert_close(out, x * w[:, :, 1, 1].reshape(1, 2, 1, 1))
    assert "channel_tiles" not in ops._depthwise_conv2d_cpu_plan(x.cpu(), w.cpu(), [1, 1], [huge] * 4, [huge] * 2)
    # And the next valid call still works.
    torch.testing.assert_close(atrous.depthwise_conv2d(x, w, None, 1, 1, 1), reference(x, w, None, 1, 1, 1))


# --- 15, 18. bad input -------------------------------------------------------------------------

def _bad_cases(device):
    x = torch.randn(2, 4, 8, 8, device=device)
    w = torch.randn(4, 1, 3, 3, device=device)
    b = torch.randn(4, device=device)
    other = "cpu" if device != "cpu" else ("meta")
    return [
        ((x[0, 0], w, None), {}, ValueError, r"input must be 3-D \(C, H, W\) or 4-D .* got 2-D"),
        ((x[None], w, None), {}, ValueError, "got 5-D"),
        ((x, w[0], None), {}, ValueError, r"weight must have shape \(C\*m, 1, kH, kW\) with C = input channels = 4"),
        ((x, torch.randn(6, 1, 3, 3, device=device), None), {}, ValueError, r"got \(6, 1, 3, 3\)"),
        ((x, torch.randn(4, 2, 3, 3, device=device), None), {}, ValueError, r"got \(4, 2, 3, 3\)"),
        ((x, w, torch.randn(5, device=device)), {}, ValueError, r"bias must have shape \(4,\), got \(5,\)"),
        ((x, w.double(), None), {}, TypeError, "weight must have the same dtype as input"),
        ((x, w, b.double()), {}, TypeError, "bias must have the same dtype as input"),
        ((x.int(), w.int(), None), {}, TypeError, "input must be float32, float64, float16 or bfloat16, got torch.int32"),
        ((x, w.to(other), None), {}, ValueError, "weight must be on the same device as input"),
        ((x, w, None), dict(stride=0), ValueError, r"stride must be in \[1, 2\^31 - 1\], got 0"),
        ((x, w, None), dict(stride=(1, -1)), ValueError, r"stride must be in .* got \(1, -1\)"),
        ((x, w, None), dict(dilation=0), ValueError, "dilation must be in"),
        ((x, w, None), dict(padding=-1), ValueError, r"padding must be in \[0, 2\^31 - 1\], got -1"),
        ((x, w, None), dict(padding="full"), ValueError, "padding must be an int, a pair of ints, 'same' or 'valid', got 'full'"),
        ((x, w, None), dict(padding="same", stride=2), ValueError, "padding='same' is not supported for strided convolutions"),
        ((x, w, None), dict(stride=(1, 2, 3)), TypeError, "stride must be an int or a pair of ints"),
        ((x, w, None), dict(stride=1.5), TypeError, "stride must be an int or a pair of ints, got 1.5"),
        ((x, torch.randn(4, 1, 11, 3, device=device), None), {}, ValueError, "larger than the padded input"),
        (("x", w, None), {}, TypeError, "input must be a torch.Tensor, got str"),
    ]


def test_bad_inputs_raise_clear_errors_and_change_nothing(device):
    for args, kwargs, exc, pattern in _bad_cases(device):
        before = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
        with pytest.raises(exc, match=pattern):
            atrous.depthwise_conv2d(*args, **kwargs)
        for a, bf in zip(args, before):
            if isinstance(a, torch.Tensor) and a.device.type != "meta":
                assert torch.equal(a, bf)
        # The next valid call succeeds.
        x = torch.randn(1, 2, 5, 5, device=device)
        w = torch.randn(2, 1, 3, 3, device=device)
        torch.testing.assert_close(atrous.depthwise_conv2d(x, w, None, 1, 1, 1), reference(x, w, None, 1, 1, 1))


def test_direct_op_calls_are_checked(device):
    x = torch.randn(2, 4, 8, 8, device=device)
    with pytest.raises(RuntimeError, match=r"weight.shape\[0\] must be a positive multiple of the input's channels \(4\), got 6"):
        ops.depthwise_conv2d(x, torch.randn(6, 1, 3, 3, device=device), None, [1, 1], [0] * 4, [1, 1])
    with pytest.raises(RuntimeError, match=r"padding must have 4 elements"):
        ops.depthwise_conv2d(x, torch.randn(4, 1, 3, 3, device=device), None, [1, 1], [0, 0], [1, 1])
    with pytest.raises(RuntimeError, match=r"grad_output must have shape \(2, 4, 8, 8\)"):
        ops.depthwise_conv2d_backward(torch.randn(2, 4, 7, 8, device=device), x, torch.randn(4, 1, 3, 3, device=device),
                                      [1, 1], [1] * 4, [1, 1], [True, False, False])
    with pytest.raises(RuntimeError, match=r"grad_output must have shape \(2, 4, 8, 8\)"):
        ops.depthwise_conv2d_backward(torch.randn(2, 4, 7, 8, device=device), x, torch.randn(4, 1, 3, 3, device=device),
                                      [1, 1], [1] * 4, [1, 1], [False, False, False])


# --- 19-20. determinism ------------------------------------------------------------------------

@pytest.mark.parametrize("C, m, H, W, k, stride", [(24, 2, 30, 31, 5, 2), (300, 1, 6, 7, 3, 1)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_deterministic_and_thread_count_independent(device, layout, C, m, H, W, k, stride):
    # (300 channels in channels_last: the weight gradient in tasks of channel blocks.)
    g = torch.Generator().manual_seed(4)
    x = in_layout(torch.randn(4, C, H, W, generator=g).to(device), layout).requires_grad_()
    w = torch.randn(C * m, 1, k, k, generator=g).to(device).requires_grad_()
    b = torch.randn(C * m, generator=g).to(device).requires_grad_()
    oh, ow = (H - 1) // stride + 1, (W - 1) // stride + 1
    go = in_layout(torch.randn(4, C * m, oh, ow, generator=g).to(device), layout)

    def run():
        out = atrous.depthwise_conv2d(x, w, b, stride, k // 2, 1)
        return (out,) + torch.autograd.grad(out, (x, w, b), go)

    previous = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    try:
        torch.use_deterministic_algorithms(True)
        first = run()
        for r in (run(), run()):
            assert all(torch.equal(a, b_) for a, b_ in zip(first, r))
        if device == "cpu":
            torch.set_num_threads(1)
            single = run()
            assert all(torch.equal(a, b_) for a, b_ in zip(first, single))
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.set_num_threads(threads)


# --- 22-23. compile, export, autocast ----------------------------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_torch_compile_fullgraph(device, layout):
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(5)
    x = in_layout(torch.randn(2, 4, 12, 13, generator=g).to(device), layout).requires_grad_()
    w = torch.randn(8, 1, 3, 3, generator=g).to(device).requires_grad_()
    b = torch.randn(8, generator=g).to(device).requires_grad_()

    def f(x, w, b):
        return atrous.depthwise_conv2d(x, w, b, stride=(1, 2), padding="valid", dilation=2).relu()

    compiled = torch.compile(f, fullgraph=True)
    out_c = compiled(x, w, b)
    out_e = f(x, w, b)
    torch.testing.assert_close(out_c, out_e)
    go = torch.randn_like(out_e)
    assert_close_all(torch.autograd.grad(out_c, (x, w, b), go), torch.autograd.grad(out_e, (x, w, b), go))


def test_torch_export(device):
    model = atrous.nn.DepthwiseConv2d(4, 3, padding=1, depth_multiplier=2).to(device)
    x = torch.randn(2, 4, 10, 10, device=device)
    ep = torch.export.export(model, (x,))
    assert any("atrous.depthwise_conv2d" in str(n.target) for n in ep.graph.nodes)
    torch.testing.assert_close(ep.module()(x), model(x))


def test_autocast_runs_in_autocast_dtype(device):
    dtype = torch.bfloat16 if device == "cpu" else torch.float16
    x = torch.randn(2, 4, 10, 10, device=device)
    w = torch.randn(4, 1, 3, 3, device=device)
    b = torch.randn(4, device=device)
    with torch.autocast(device_type=device, dtype=dtype):
        out = atrous.depthwise_conv2d(x, w, b, 1, 1, 1)
        ref = reference(x, w, b, 1, 1, 1)
    assert out.dtype == ref.dtype == dtype
    torch.testing.assert_close(out, ref, atol=0.1, rtol=0.02)


# --- modules -----------------------------------------------------------------------------------

def test_module_state_dict_interop_with_conv2d(device):
    conv = torch.nn.Conv2d(6, 12, (3, 5), stride=2, padding=(1, 2), dilation=1, groups=6).to(device)
    dw = atrous.nn.DepthwiseConv2d(6, (3, 5), stride=2, padding=(1, 2), depth_multiplier=2).to(device)
    dw.load_state_dict(conv.state_dict())
    x = torch.randn(2, 6, 15, 16, device=device)
    torch.testing.assert_close(dw(x), conv(x), atol=1e-5, rtol=1e-5)
    conv2 = torch.nn.Conv2d(6, 12, (3, 5), groups=6).to(device)
    conv2.load_state_dict(dw.state_dict())
    torch.testing.assert_close(conv2.weight, dw.weight)


def test_module_from_conv_shares_parameters(device):
    conv = torch.nn.Conv2d(8, 8, 3, padding="same", dilation=2, groups=8, bias=False).to(device)
    dw = atrous.nn.DepthwiseConv2d.from_conv(conv)
    assert dw.weight is conv.weight and dw.bias is None
    x = torch.randn(1, 8, 9, 9, device=device)
    torch.testing.assert_close(dw(x), conv(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="depthwise nn.Conv2d .* groups=1"):
        atrous.nn.DepthwiseConv2d.from_conv(torch.nn.Conv2d(8, 8, 3))
    with pytest.raises(ValueError, match="padding_mode='zeros' only, got 'reflect'"):
        atrous.nn.DepthwiseConv2d.from_conv(torch.nn.Conv2d(8, 8, 3, groups=8, padding=1, padding_mode="reflect"))
    with pytest.raises(TypeError, match="expects an nn.Conv2d, got Linear"):
        atrous.nn.DepthwiseConv2d.from_conv(torch.nn.Linear(2, 2))


def test_module_init_matches_conv2d_distribution():
    torch.manual_seed(0)
    dw = atrous.nn.DepthwiseConv2d(64, 5)
    bound = 1 / math.sqrt(25)  # kaiming_uniform(a=sqrt(5)) and the bias both give 1/sqrt(fan_in)
    assert dw.weight.abs().max() <= bound and dw.bias.abs().max() <= bound
    assert "kernel_size=(5, 5)" in repr(dw)
    with pytest.raises(ValueError, match="depth_multiplier must be a positive int, got 0"):
        atrous.nn.DepthwiseConv2d(4, 3, depth_multiplier=0)

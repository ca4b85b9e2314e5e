"""Every pooling layer of bench_max_pool.py, both layouts, forward (with the suite's indices
choice) and the backward op alone, in the dtype $DTYPE names (float32 by default); torch or
atrous (WHICH), one process; run by ab.py. $ONLY, if set, keeps the lines containing it."""
import os
import sys

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

import atrous  # noqa: F401 (registers torch.ops.atrous)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from bench_max_pool import CASES  # noqa: E402

torch.set_num_threads(int(sys.argv[1]))
dtype = getattr(torch, os.environ.get("DTYPE", "float32"))
which = os.environ.get("WHICH", "ours")
for name, n, c, h, w, k, s, p, wi in CASES:
    for layout in ("contiguous", "channels_last"):
        x = torch.randn(n, c, h, w).to(dtype)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        v, i = F.max_pool2d(x, k, s, p, return_indices=True)
        go = torch.randn_like(v)
        if which == "torch":
            fwd = lambda: F.max_pool2d(x, k, s, p, return_indices=wi)
            bwd = lambda: torch.ops.aten.max_pool2d_with_indices_backward(go, x, [k, k], [s, s], [p, p], [1, 1], False, i)
        else:
            fwd = lambda: atrous.max_pool2d(x, k, s, p, return_indices=wi)
            bwd = lambda: torch.ops.atrous.max_pool2d_backward(go, i, list(x.shape), [k, k], [s, s], [p, p], [1, 1], False)
        for direction, f in (("fwd", fwd), ("bwd", bwd)):
            if os.environ.get("ONLY", "") not in f"{name} {layout} {direction}":
                continue
            t = Timer("f()", globals=dict(f=f)).blocked_autorange(min_run_time=0.15)
            print(f"{name} {layout} {direction}", t.median * 1e3)

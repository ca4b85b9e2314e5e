"""max_pool2d backward op alone (torch's max_pool2d_with_indices_backward, ours, or a copy of the
input's bytes), WHICH = torch | ours | copy, one process; run by ab.py."""
import os
import sys

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

import atrous  # noqa: F401 (registers torch.ops.atrous)

torch.set_num_threads(int(sys.argv[1]))
CASES = [((1, 64, 112, 112), 3, 2, 1, "contiguous"), ((8, 64, 112, 112), 3, 2, 1, "contiguous"),
         ((1, 256, 90, 120), 2, 2, 0, "contiguous"), ((8, 256, 90, 120), 2, 2, 0, "contiguous"),
         ((1, 64, 112, 112), 3, 2, 1, "channels_last"), ((8, 64, 112, 112), 3, 2, 1, "channels_last"),
         ((1, 256, 90, 120), 2, 2, 0, "channels_last"), ((8, 256, 90, 120), 2, 2, 0, "channels_last"),
         ((1, 512, 23, 30), 2, 2, 0, "channels_last")]
which = os.environ.get("WHICH", "ours")
for shape, k, s, p, layout in CASES:
    x = torch.randn(*shape)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    v, i = F.max_pool2d(x, k, s, p, return_indices=True)
    go = torch.randn_like(v)
    if which == "torch":
        f = lambda: torch.ops.aten.max_pool2d_with_indices_backward(go, x, [k, k], [s, s], [p, p], [1, 1], False, i)
    elif which == "copy":
        f = lambda: x.clone()
    else:
        f = lambda: torch.ops.atrous.max_pool2d_backward(go, i, list(x.shape), [k, k], [s, s], [p, p], [1, 1], False)
    t = Timer("f()", globals=dict(f=f)).blocked_autorange(min_run_time=0.3)
    print(f"{shape} {k}x{k}/{s} {layout}", t.median * 1e3)

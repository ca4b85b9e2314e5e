"""channels_last max_pool2d forward alone, torch or atrous (WHICH), one process; run by ab.py."""
import os
import sys

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

import atrous

torch.set_num_threads(int(sys.argv[1]))
# (shape, kernel, stride, padding, with indices): the suite's channels_last cases and two more.
CASES = [((1, 64, 360, 480), 2, 2, 0, True), ((1, 128, 180, 240), 2, 2, 0, True), ((1, 256, 90, 120), 2, 2, 0, True),
         ((1, 512, 23, 30), 2, 2, 0, True), ((8, 256, 90, 120), 2, 2, 0, True), ((8, 512, 45, 60), 2, 2, 0, True),
         ((8, 64, 224, 224), 2, 2, 0, True), ((8, 256, 56, 56), 2, 2, 0, False), ((1, 16, 256, 256), 2, 2, 0, True),
         ((8, 64, 128, 128), 2, 2, 0, True), ((8, 64, 112, 112), 3, 2, 1, False), ((1, 64, 112, 112), 3, 2, 1, False),
         ((8, 128, 90, 120), 2, 2, 0, True), ((8, 96, 56, 56), 3, 2, 1, False)]
which = os.environ.get("WHICH", "ours")
for shape, k, s, p, wi in CASES:
    x = torch.randn(*shape).contiguous(memory_format=torch.channels_last)
    pool = F.max_pool2d if which == "torch" else atrous.max_pool2d
    t = Timer("f()", globals=dict(f=lambda: pool(x, k, s, p, return_indices=wi))).blocked_autorange(min_run_time=0.25)
    print(f"{shape} {k}x{k}/{s} {'indices' if wi else 'values'}", t.median * 1e3)

"""Per-call cost of each op on a tiny input, one thread: the microseconds of a whole call (Python
checks, dispatch, kernel), without and with a gradient, against the torch op it replaces."""
import time

import torch
import torch.nn.functional as F

import atrous

torch.set_num_threads(1)


def us(f, n=20000):
    for _ in range(200):
        f()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            f()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


x = torch.randn(1, 8, 4, 4)
w = torch.randn(8, 1, 3, 3)
xg = x.clone().requires_grad_()
y, i = F.max_pool2d(x, 2, 2, return_indices=True)
rows = [
    ("depthwise_conv2d", lambda: F.conv2d(x, w, None, 1, 1, 1, 8), lambda: atrous.depthwise_conv2d(x, w, None, 1, 1)),
    ("depthwise_conv2d, input requires grad", lambda: F.conv2d(xg, w, None, 1, 1, 1, 8),
     lambda: atrous.depthwise_conv2d(xg, w, None, 1, 1)),
    ("max_pool2d with indices", lambda: F.max_pool2d(x, 2, 2, return_indices=True),
     lambda: atrous.max_pool2d(x, 2, 2, return_indices=True)),
    ("max_pool2d, input requires grad", lambda: F.max_pool2d(xg, 2, 2, return_indices=True),
     lambda: atrous.max_pool2d(xg, 2, 2, return_indices=True)),
    ("max_unpool2d", lambda: F.max_unpool2d(y, i, 2, 2), lambda: atrous.max_unpool2d(y, i, 2, 2)),
]
print("| call | torch us | atrous us |\n|---|---|---|")
for name, ref, ours in rows:
    print(f"| {name} | {us(ref):.1f} | {us(ours):.1f} |")

# The ResNet stem (64, 112x112, 3x3/2) forward+backward through autograd, WHICH=torch or ours; prints "case ms".
import os, sys, time, torch
import torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
which = os.environ.get("WHICH", "ours")
if which != "torch": import atrous
for N, layout in ((1, torch.channels_last), (1, torch.contiguous_format), (8, torch.channels_last)):
    x = torch.randn(N, 64, 112, 112).contiguous(memory_format=layout).requires_grad_()
    g = torch.randn_like(F.max_pool2d(x.detach(), 3, 2, 1))
    pool = F.max_pool2d if which == "torch" else atrous.max_pool2d
    f = lambda: torch.autograd.grad(pool(x, 3, 2, 1), x, g)
    f(); b = 1e9
    for _ in range(30 if N == 1 else 10):
        t0 = time.perf_counter(); f(); b = min(b, time.perf_counter() - t0)
    print(f"stem b{N} {'cl' if layout == torch.channels_last else 'nchw'} f+b", f"{b*1e3:.4f}")

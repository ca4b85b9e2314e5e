import torch, atrous, sys, os
import torch.nn.functional as F
from torch.utils.benchmark import Timer
torch.set_num_threads(int(sys.argv[1]))
cases = [(8,96,80,80,3,2),(8,32,80,80,3,1),(8,144,40,40,3,1),(8,48,80,80,3,2),(8,144,40,40,3,2)]
# SET=stride2: the layers of stride2_rule_1t.md
if os.environ.get("SET") == "stride2":
    cases = [(1,96,112,112,3,2),(1,144,112,112,3,2),(8,144,40,40,3,2),(8,64,80,80,3,2),(8,96,80,80,3,2),(8,144,40,40,3,1)]
which = os.environ.get("WHICH", "ours")
for n,c,h,w,k,s in cases:
    x = torch.randn(n,c,h,w).contiguous(memory_format=torch.channels_last)
    wt = torch.randn(c,1,k,k); b = torch.randn(c); p = k//2
    f = (lambda: F.conv2d(x, wt, b, s, p, 1, c)) if which == "torch" else (lambda: atrous.depthwise_conv2d(x, wt, b, s, p))
    def fn():
        with torch.no_grad(): f()
    t = Timer("f()", globals=dict(f=fn)).blocked_autorange(min_run_time=0.2)
    print(f"{(n,c,h,w,k,s)} fwd", t.median * 1e3)

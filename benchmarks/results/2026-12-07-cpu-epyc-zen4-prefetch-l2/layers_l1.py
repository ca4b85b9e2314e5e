import torch, atrous, sys, os
import torch.nn.functional as F
from torch.utils.benchmark import Timer
torch.set_num_threads(int(sys.argv[1]))
# channels_last batch-8 layers of the network mode (mobilenet_v2, efficientnet_b0, mnasnet1_0, convnext_tiny) whose input is 3 MB or more
cases = [(8,32,80,80,3,1),(8,96,80,80,3,2),(8,144,40,40,3,1),(8,144,40,40,3,2),(8,48,80,80,3,2),(8,72,40,40,3,1),(8,144,40,40,5,2),(8,72,40,40,5,2),(8,96,40,40,7,1),(8,240,20,20,5,1)]
which = os.environ.get("WHICH", "ours")
fb = os.environ.get("FB") == "1"
for n,c,h,w,k,s in cases:
    x = torch.randn(n,c,h,w).contiguous(memory_format=torch.channels_last)
    wt = torch.randn(c,1,k,k); b = torch.randn(c); p = k//2
    f = (lambda x, w, b: F.conv2d(x, w, b, s, p, 1, c)) if which == "torch" else (lambda x, w, b: atrous.depthwise_conv2d(x, w, b, s, p))
    if fb:
        xg = x.clone().requires_grad_(); wg = wt.clone().requires_grad_(); bg = b.clone().requires_grad_()
        go = torch.randn_like(f(x, wt, b))
        def fn():
            out = f(xg, wg, bg); torch.autograd.grad(out, (xg, wg, bg), go)
    else:
        def fn():
            with torch.no_grad(): f(x, wt, b)
    t = Timer("f()", globals=dict(f=fn)).blocked_autorange(min_run_time=0.15)
    print(f"{(n,c,h,w,k,s)} {'fb' if fb else 'fwd'}", t.median * 1e3)

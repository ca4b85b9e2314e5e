import torch, atrous, sys, os
import torch.nn.functional as F
from torch.utils.benchmark import Timer
torch.set_num_threads(int(sys.argv[1]))
cl = os.environ.get("CL") == "1"
cases = [(8,192,20,20,3,2),(8,576,10,10,3,1),(8,192,20,20,3,1),(8,384,10,10,3,1),(8,960,5,5,3,1),(8,144,40,40,3,2),(1,576,14,14,3,2),(8,672,10,10,5,1),(8,240,20,20,5,1),(1,960,7,7,5,1)]
which = os.environ.get("WHICH", "ours")
for n,c,h,w,k,s in cases:
    x = torch.randn(n,c,h,w)
    if cl: x = x.contiguous(memory_format=torch.channels_last)
    wt = torch.randn(c,1,k,k); b = torch.randn(c); p = k//2
    xg = x.clone().requires_grad_(); wg = wt.clone().requires_grad_(); bg = b.clone().requires_grad_()
    f = (lambda x, w, b: F.conv2d(x, w, b, s, p, 1, c)) if which == "torch" else (lambda x, w, b: atrous.depthwise_conv2d(x, w, b, s, p))
    go = torch.randn_like(f(x, wt, b))
    def fwd():
        with torch.no_grad(): f(x, wt, b)
    def fb():
        out = f(xg, wg, bg); torch.autograd.grad(out, (xg, wg, bg), go)
    for d, fn in (("fwd", fwd), ("fb", fb)):
        t = Timer("f()", globals=dict(f=fn)).blocked_autorange(min_run_time=0.15)
        print(f"{(n,c,h,w,k,s)} {d}", t.median * 1e3)

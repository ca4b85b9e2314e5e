"""channels_last layers the quick make bench counted slower at 2 threads: forward and forward+backward (input and
weight), WHICH=torch or ours. Prints case ms (min of 30)."""
import os, sys, time, torch, torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
which = os.environ.get("WHICH", "ours")
if which != "torch": import atrous
for N,C,H,k,s in [(8,192,20,3,1),(8,192,20,3,2),(8,240,20,3,2),(8,144,40,3,2),(8,32,80,3,1)]:
    x = torch.randn(N,C,H,H).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = (torch.randn(C,1,k,k)/k).requires_grad_(); p=k//2
    f = (lambda: F.conv2d(x,w,None,s,p,1,C)) if which=="torch" else (lambda: atrous.depthwise_conv2d(x,w,None,s,p,1))
    go = torch.randn_like(f())
    for name, fn in (("fwd", f), ("f+b", lambda: torch.autograd.grad(f(), (x, w), go))):
        with torch.no_grad() if name=="fwd" else torch.enable_grad():
            fn(); b=1e9
            for _ in range(30):
                t0=time.perf_counter(); fn(); b=min(b,time.perf_counter()-t0)
        print(f"({N}, {C}, {H}, {H}) {k}x{k} s{s} {name}", f"{b*1e3:.4f}")

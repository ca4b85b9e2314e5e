import torch, atrous, sys, os, time
torch.set_num_threads(int(sys.argv[1]))
cases=[(4,128,128,56,56,3,1,1,0),(4,256,256,28,28,3,1,1,0),(4,64,128,112,112,3,2,1,0),(2,128,256,75,75,3,1,1,0),(4,128,128,56,56,3,1,1,1),(2,304,256,128,128,3,1,1,0)]
from torch.utils.benchmark import Timer
for n,c,co,h,w,k,s,d,cl in cases:
    x = torch.randn(n,c,h,w)
    if cl: x = x.contiguous(memory_format=torch.channels_last)
    dw = torch.randn(c,1,k,k); db=torch.randn(c); pw=torch.randn(co,c,1,1); p=d*(k//2)
    go = torch.randn_like(atrous.separable_conv2d(x, dw, pw, db, None, s, p, d, activation="relu"))
    f = lambda: torch.ops.atrous.separable_conv2d_backward(go, x, dw, pw, db, [s,s],[p,p,p,p],[d,d],"relu",[True]*5)
    t = Timer("f()", globals=dict(f=f)).blocked_autorange(min_run_time=0.3)
    print(f"{(n,c,co,h,w,k,s,d,'cl' if cl else 'nchw')} backward", t.median*1e3)

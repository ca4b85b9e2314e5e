"""separable_conv2d forward+backward (all five gradients) on the suite's and legacy_xception's slow cases,
WHICH=torch (two F.conv2d) or ours. Prints case ms (min of 10 forward+backward)."""
import os, sys, time, torch, torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
which = os.environ.get("WHICH", "ours")
if which != "torch": import atrous
torch.manual_seed(0)
for N,C,H,W,Co,s,act,layout in [(1,1536,7,7,2048,1,None,"nchw"),(1,728,14,14,1024,1,None,"nchw"),(1,512,14,14,1024,2,"relu","nchw"),
                                 (4,256,28,28,256,1,"relu","nchw"),(4,512,14,14,512,1,"relu","nchw"),(2,728,19,19,728,1,None,"nchw"),
                                 (4,1024,7,7,1024,1,"relu","nchw"),(4,128,56,56,128,1,"relu","nchw"),
                                 (1,1536,7,7,2048,1,None,"cl"),(4,256,28,28,256,1,"relu","cl"),(2,728,19,19,728,1,None,"cl")]:
    x = torch.randn(N,C,H,W)
    if layout == "cl": x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    dw = torch.randn(C,1,3,3,requires_grad=True); db = torch.randn(C,requires_grad=True)
    pw = torch.randn(Co,C,1,1,requires_grad=True); pb = torch.randn(Co,requires_grad=True)
    params = [x, dw, db, pw, pb]
    if which == "torch":
        def fwd():
            m = F.conv2d(x, dw, db, s, 1, 1, C)
            return F.conv2d(F.relu(m) if act else m, pw, pb)
    else:
        fwd = lambda: atrous.separable_conv2d(x, dw, pw, db, pb, stride=s, padding=1, activation=act)
    g = torch.randn_like(fwd())
    def step():
        y = fwd()
        torch.autograd.grad(y, params, g)
    step(); b = 1e9
    for _ in range(10):
        t0 = time.perf_counter(); step(); b = min(b, time.perf_counter() - t0)
    print(f"({N}, {C}, {H}, {W}) -> {Co} s{s} {act or 'none'} {layout}", f"{b*1e3:.4f}")

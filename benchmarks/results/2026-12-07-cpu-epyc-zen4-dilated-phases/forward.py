# forward of listed layers, torch and atrous alternating (2 rounds, min of 3 timings each)
#   python forward.py THREADS "[(N, C, H, W, K, stride, dilation, 'cl' or 'nchw'), ...]" [nobias]
import sys, torch, atrous, torch.nn.functional as F
from torch.utils.benchmark import Timer
T = int(sys.argv[1]); torch.set_num_threads(T)
shapes = eval(sys.argv[2])
def t(stmt, g):
    return min(Timer(stmt, globals=g, num_threads=T).blocked_autorange(min_run_time=0.2).median for _ in range(3))*1e3
for (N,C,H,W,K,S,D,lay) in shapes:
    pad=(K-1)*D//2
    x = torch.randn(N,C,H,W); w = torch.randn(C,1,K,K); b = torch.randn(C) if len(sys.argv) < 4 else None
    if lay=="cl": x = x.contiguous(memory_format=torch.channels_last)
    y = F.conv2d(x,w,b,S,pad,D,C); ya = atrous.depthwise_conv2d(x,w,b,S,pad,D)
    assert torch.allclose(y, ya, atol=1e-3, rtol=1e-4)
    g = dict(F=F, atrous=atrous, x=x, w=w, b=b, S=S, pad=pad, C=C, D=D)
    res=[]
    for r in range(2):
        res.append((t("F.conv2d(x,w,b,S,pad,D,C)", g), t("atrous.depthwise_conv2d(x,w,b,S,pad,D)", g)))
    tt = min(r[0] for r in res); aa = min(r[1] for r in res)
    plan = torch.ops.atrous._depthwise_conv2d_cpu_plan(x, w, [S,S], [pad]*4, [D,D]).split()[0]
    print(f"{(N,C,H,W)} {K}x{K} s{S} d{D} {lay} T{T}: torch {tt*1e3:.0f} ours {aa*1e3:.0f} us  {tt/aa:.2f}x  {plan}", flush=True)

# interleaved: torch grad_input, atrous grad_input, a copy of grad_input's bytes; min and median over rounds
import sys, torch, atrous, torch.nn.functional as F, statistics
from torch.utils.benchmark import Timer
N,C,H,W,K,S,D = map(int, sys.argv[1:8]); layout=sys.argv[8]; T=int(sys.argv[9]); torch.set_num_threads(T)
what = sys.argv[10] if len(sys.argv) > 10 else "gi"
pad=(K-1)*D//2
x = torch.randn(N,C,H,W); w = torch.randn(C,1,K,K)
if layout == "cl": x = x.contiguous(memory_format=torch.channels_last)
y = F.conv2d(x, w, None, S, pad, D, C); go = torch.randn_like(y); cp = torch.empty_like(x)
m = [what == "gi", what == "gw", False]
g = dict(torch=torch, x=x, w=w, S=S, pad=pad, D=D, C=C, go=go, cp=cp, m=m)
stm = {"torch": "torch.ops.aten.convolution_backward(go, x, w, None, [S,S], [pad,pad], [D,D], False, [0,0], C, m)",
       "ours": "torch.ops.atrous.depthwise_conv2d_backward(go, x, w, [S,S], [pad]*4, [D,D], m)",
       "copy": "cp.copy_(x)"}
res = {k: [] for k in stm}
for r in range(int(sys.argv[11]) if len(sys.argv) > 11 else 5):
    for k, s in stm.items():
        res[k].append(Timer(s, globals=g, num_threads=T).blocked_autorange(min_run_time=0.2).median * 1e6)
mn = {k: min(v) for k, v in res.items()}; md = {k: statistics.median(v) for k, v in res.items()}
print(f"{what} {tuple(x.shape)} k{K} s{S} d{D} {layout} T{T}: torch {mn['torch']:.0f}/{md['torch']:.0f} ours {mn['ours']:.0f}/{md['ours']:.0f} us (min/median) "
      f"speedup {mn['torch']/mn['ours']:.2f}x/{md['torch']/md['ours']:.2f}x copy {mn['copy']:.0f}")

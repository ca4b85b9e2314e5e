# time one depthwise layer's parts: forward, grad_input, grad_weight, torch vs atrous
import sys, torch, atrous, torch.nn.functional as F
from torch.utils.benchmark import Timer
torch.manual_seed(0)
N,C,H,W,K,S,D = map(int, sys.argv[1:8]); layout = sys.argv[8]; T = int(sys.argv[9])
torch.set_num_threads(T)
pad = (K-1)*D//2
x = torch.randn(N,C,H,W); w = torch.randn(C,1,K,K); b = torch.randn(C)
if layout == "cl": x = x.contiguous(memory_format=torch.channels_last)
print(torch.ops.atrous._depthwise_conv2d_cpu_plan(x, w, [S,S], [pad,pad,pad,pad], [D,D]))
def t(stmt, g):
    return min(Timer(stmt, globals=g, num_threads=T).blocked_autorange(min_run_time=0.3).median for _ in range(3))*1e3
xr = x.clone().requires_grad_(); wr = w.clone().requires_grad_(); br = b.clone().requires_grad_()
y = F.conv2d(x, w, b, S, pad, D, C); go = torch.randn_like(y)
g = dict(F=F, atrous=atrous, x=x, w=w, b=b, S=S, pad=pad, D=D, C=C, xr=xr, wr=wr, br=br, go=go, torch=torch)
for r in range(2):
  tf = t("F.conv2d(x,w,b,S,pad,D,C)", g); af = t("atrous.depthwise_conv2d(x,w,b,S,pad,D)", g)
  tfb = t("torch.autograd.grad(F.conv2d(xr,wr,br,S,pad,D,C), (xr,wr,br), go)", g)
  afb = t("torch.autograd.grad(atrous.depthwise_conv2d(xr,wr,br,S,pad,D), (xr,wr,br), go)", g)
  tfi = t("torch.autograd.grad(F.conv2d(xr,w,b,S,pad,D,C), (xr,), go)", g)
  afi = t("torch.autograd.grad(atrous.depthwise_conv2d(xr,w,b,S,pad,D), (xr,), go)", g)
  tfw = t("torch.autograd.grad(F.conv2d(x,wr,b,S,pad,D,C), (wr,), go)", g)
  afw = t("torch.autograd.grad(atrous.depthwise_conv2d(x,wr,b,S,pad,D), (wr,), go)", g)
  print(f"fwd {tf:.3f}/{af:.3f} {tf/af:.2f}x | f+b {tfb:.3f}/{afb:.3f} {tfb/afb:.2f}x | f+gi {tfi:.3f}/{afi:.3f} {tfi/afi:.2f}x | f+gw {tfw:.3f}/{afw:.3f} {tfw/afw:.2f}x")

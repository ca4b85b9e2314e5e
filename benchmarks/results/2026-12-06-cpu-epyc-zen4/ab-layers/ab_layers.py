# One build's times of the given layers (json list of [N, C, H, W, k, stride, dilation]), threads, "fwd" or "fb": torch and ours, 3 timings each, one json line a layer. Run once per build and round, alternating builds, with PYTHONPATH at each build; prefix each line with "base " or "new ".
import sys, os, torch, torch.nn.functional as F, atrous, statistics, json
from torch.utils.benchmark import Timer
shapes=json.loads(sys.argv[1]); t=int(sys.argv[2]); direction=sys.argv[3]
torch.set_num_threads(t)
for (N,C,H,W,k,s,d) in shapes:
    x=torch.randn(N,C,H,W).contiguous(memory_format=torch.channels_last); w=torch.randn(C,1,k,k)/k; b=torch.randn(C); p=k//2*d
    if direction=='fwd':
      fo=lambda: atrous.depthwise_conv2d(x,w,b,s,p,d); ft=lambda: F.conv2d(x,w,b,s,p,d,groups=C)
    else:
      xs=x.clone().requires_grad_(); ws=w.clone().requires_grad_(); bs=b.clone().requires_grad_()
      go=torch.randn_like(F.conv2d(x,w,b,s,p,d,groups=C))
      fo=lambda: torch.autograd.grad(atrous.depthwise_conv2d(xs,ws,bs,s,p,d),(xs,ws,bs),go)
      ft=lambda: torch.autograd.grad(F.conv2d(xs,ws,bs,s,p,d,groups=C),(xs,ws,bs),go)
    res={'torch':[],'ours':[]}
    for r in range(3):
      for name,f in (('torch',ft),('ours',fo)):
        res[name].append(Timer('f()',globals={'f':f},num_threads=t).blocked_autorange(min_run_time=0.1).median*1e3)
    print(json.dumps([[N,C,H,W,k,s,d],t,direction,res]), flush=True)

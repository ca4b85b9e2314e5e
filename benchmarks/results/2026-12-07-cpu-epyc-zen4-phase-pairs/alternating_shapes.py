import torch, atrous, time, sys
import os; torch.set_num_threads(int(sys.argv[1])); S = int(os.environ.get("S", "2"))
shp = eval(os.environ.get("SHP", "(8,144,40,40)"))  # SHP, CL (1: channels_last), S (stride) from the environment
x = torch.randn(*shp)
x = x.contiguous(memory_format=torch.channels_last) if os.environ.get("CL", "1") == "1" else x
C = shp[1]; w = torch.randn(C,1,3,3); b = torch.randn(C)
y = atrous.depthwise_conv2d(x, w, b, S, 1, 1); go = torch.randn_like(y)
ops = torch.ops.atrous
def fwd(): return ops.depthwise_conv2d.default(x, w, b, [S,S], [1]*4, [1,1])
def bwd(): return ops.depthwise_conv2d_backward(go, x, w, [S,S], [1]*4, [1,1], [True, False, False])
def tf(): return torch.ops.aten.convolution(x, w, b, [S,S], [1,1], [1,1], False, [0,0], C)
def tb(): return torch.ops.aten.convolution_backward(go, x, w, None, [S,S], [1,1], [1,1], False, [0,0], C, [True,False,False])
def run(fs, n=300):
    for _ in range(30):
        for f in fs: f()
    t = [0.0] * len(fs)
    for _ in range(n):
        for i, f in enumerate(fs):
            s = time.perf_counter(); r = f(); t[i] += time.perf_counter() - s; del r
    return [round(v / n * 1e6) for v in t]
for _ in range(2):
    print("ours fwd alone", run([fwd]), "bwd alone", run([bwd]), "alternating", run([fwd, bwd]))
    print("torch fwd alone", run([tf]), "bwd alone", run([tb]), "alternating", run([tf, tb]))

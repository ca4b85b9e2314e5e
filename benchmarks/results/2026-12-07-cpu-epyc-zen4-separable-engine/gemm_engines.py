# One tile-sized pointwise product, us (min of 3 x 200 calls), by engine: at::mm into NCHW rows,
# at::mm in NHWC order, oneDNN (mkldnn_convolution) and F.conv2d on a (1, Cm, 1, P) image.
# T=1 python gemm_engines.py
import torch, time, sys, os
import torch.nn.functional as F
torch.set_num_threads(int(os.environ.get("T","1")))
def tm(f, it=200):
    for i in range(5): f()
    best=1e9
    for r in range(3):
        t=time.perf_counter()
        for i in range(it): f()
        best=min(best,(time.perf_counter()-t)/it*1e6)
    return round(best,1)
for (cm, co, P) in [(64,128,560),(64,128,3136),(256,256,392),(256,256,784),(512,512,196),(128,256,1125),(2048,256,512)]:
    W = torch.randn(co, cm); X = torch.randn(cm, P); out = torch.empty(co, P)
    W4 = W.view(co,cm,1,1)
    Xi = X.view(1,cm,1,P)
    flops = 2*cm*co*P
    r = {}
    r["mm"] = tm(lambda: torch.mm(W, X, out=out))
    r["mm_t"] = tm(lambda: torch.mm(X.t(), W.t()))  # NHWC-like: (P,cm)@(cm,co)
    Xn = X.t().contiguous()
    r["mm_nhwc"] = tm(lambda: torch.mm(Xn, W.t()))
    r["mkldnn"] = tm(lambda: torch.mkldnn_convolution(Xi, W4, None, [0,0],[1,1],[1,1],1))
    r["conv"] = tm(lambda: F.conv2d(Xi, W4))
    print((cm,co,P), r, "GF/s mm:", round(flops/r["mm"]/1e3,1))

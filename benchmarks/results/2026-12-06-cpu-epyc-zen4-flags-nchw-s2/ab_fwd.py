# One build's forward times of the given layers: json list of [N, C, H, W, k, stride, dilation, layout]; threads.
# torch and ours, 3 timings each (torch.utils.benchmark medians), one json line a layer.
import sys, torch, torch.nn.functional as F, atrous, json
from torch.utils.benchmark import Timer
shapes = json.loads(sys.argv[1]); t = int(sys.argv[2])
torch.set_num_threads(t)
for (N, C, H, W, k, s, d, layout) in shapes:
    fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
    x = torch.randn(N, C, H, W).contiguous(memory_format=fmt); w = torch.randn(C, 1, k, k) / k; b = torch.randn(C); p = k // 2 * d
    fo = lambda: atrous.depthwise_conv2d(x, w, b, s, p, d); ft = lambda: F.conv2d(x, w, b, s, p, d, groups=C)
    res = {"torch": [], "ours": []}
    for r in range(3):
        for name, f in (("torch", ft), ("ours", fo)):
            res[name].append(Timer("f()", globals={"f": f}, num_threads=t).blocked_autorange(min_run_time=0.1).median * 1e3)
    print(json.dumps([[N, C, H, W, k, s, d, layout], t, res]), flush=True)

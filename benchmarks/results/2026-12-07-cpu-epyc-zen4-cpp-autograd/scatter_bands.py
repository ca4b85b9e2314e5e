import torch, atrous, time, sys
import torch.nn.functional as F
ops = torch.ops.atrous
for th in (1, 2):
    torch.set_num_threads(th)
    for shp, k, s, p in [((1,64,112,112),3,2,1), ((1,24,64,64),2,2,0), ((1,32,56,56),3,2,1)]:
        xd = torch.randn(*shp).contiguous(memory_format=torch.channels_last)
        o, i = F.max_pool2d(xd, k, s, p, return_indices=True)
        g = torch.ones_like(o)
        f = lambda: ops.max_pool2d_backward.default(g, i, list(xd.shape), [k,k], [s,s], [p,p], [1,1], False)
        ft = lambda: torch.ops.aten.max_pool2d_with_indices_backward.default(g, xd, [k,k], [s,s], [p,p], [1,1], False, i)
        res = {}
        for r in range(7):
            for name, fn in (("ours", f), ("torch", ft)):
                for _ in range(5): fn()
                t0 = time.perf_counter()
                for _ in range(50): fn()
                res.setdefault(name, []).append((time.perf_counter() - t0) / 50 * 1e6)
        print(th, shp, k, " ".join("%s min %.0f med %.0f" % (n, min(v), sorted(v)[3]) for n, v in res.items()))

import torch, atrous, itertools
import torch.nn.functional as F
n = 0
for shp in [(1,512,23,30),(2,48,11,13),(1,20,9,7),(3,16,5,8),(1,3,9,9),(2,8,6,7),(1,24,7,10)]:
  for dt in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
    for (k,s,p,d,cm) in [(2,2,0,1,False),(3,3,1,1,True),(2,3,0,1,False),(2,4,1,2,True),(3,3,0,1,True),(1,2,0,1,False),(2,2,1,1,True)]:
        x = torch.randn(*shp, dtype=dt).contiguous(memory_format=torch.channels_last)
        try:
            o, i = F.max_pool2d(x, k, s, p, d, cm, return_indices=True)
        except RuntimeError as e:
            continue
        g = torch.randn_like(o)
        ref = torch.ops.aten.max_pool2d_with_indices_backward(g, x, [k,k], [s,s], [p,p], [d,d], cm, i)
        got = torch.ops.atrous.max_pool2d_backward(g, i, list(x.shape), [k,k], [s,s], [p,p], [d,d], cm)
        plan = torch.ops.atrous._max_pool2d_cpu_plan(x, [k,k], [s,s], [p,p], [d,d], cm)
        n += "windows" in plan
        assert torch.equal(ref, got), (shp, dt, k, s, p, d, cm, plan)
print('ok', n)

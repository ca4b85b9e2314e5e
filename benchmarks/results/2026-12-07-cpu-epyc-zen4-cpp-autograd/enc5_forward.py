import torch, atrous, time, sys
import torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
x = torch.randn(1, 512, 23, 30).contiguous(memory_format=torch.channels_last)
ops = torch.ops.atrous
def t(f, n=400):
    for _ in range(50): f()
    best = 1e9
    for r in range(7):
        s = time.perf_counter()
        for _ in range(n): f()
        best = min(best, (time.perf_counter() - s) / n * 1e6)
    return best
for _ in range(2):
    print("torch F %.1f" % t(lambda: F.max_pool2d(x, 2, 2, return_indices=True)),
          "atrous F %.1f" % t(lambda: atrous.max_pool2d(x, 2, 2, return_indices=True)),
          "op %.1f" % t(lambda: ops.max_pool2d.default(x, [2,2], [2,2], [0,0], [1,1], False, True)),
          "torch noidx %.1f" % t(lambda: F.max_pool2d(x, 2, 2)),
          "atrous noidx %.1f" % t(lambda: atrous.max_pool2d(x, 2, 2)))
    with torch._C._AutoDispatchBelowAutograd():
        print("op below %.1f" % t(lambda: ops.max_pool2d.default(x, [2,2], [2,2], [0,0], [1,1], False, True)))
    print(ops._max_pool2d_cpu_plan(x, [2,2], [2,2], [0,0], [1,1], False))

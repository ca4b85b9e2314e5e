import torch, atrous, time
import torch.nn.functional as F
torch.set_num_threads(1)
x = torch.randn(1, 4, 4, 4).requires_grad_()
w = torch.randn(4, 1, 3, 3).requires_grad_()
def t(f, n=3000):
    for _ in range(200): f()
    best = 1e9
    for r in range(5):
        s = time.perf_counter()
        for _ in range(n): f()
        best = min(best, (time.perf_counter() - s) / n * 1e6)
    return best
ops = torch.ops.atrous
def fb(f):
    def g():
        o = f()
        o.backward(torch.ones_like(o))
    return g
cases = {
 "pool torch": lambda: F.max_pool2d(x, 2, 2, return_indices=True)[0],
 "pool atrous": lambda: atrous.max_pool2d(x, 2, 2, return_indices=True)[0],
 "pool op": lambda: ops.max_pool2d(x, [2,2], [2,2], [0,0], [1,1], False, True)[0],
 "dw torch": lambda: F.conv2d(x, w, None, 1, 1, 1, 4),
 "dw atrous": lambda: atrous.depthwise_conv2d(x, w, None, 1, 1, 1),
 "dw op": lambda: ops.depthwise_conv2d(x, w, None, [1,1], [1,1,1,1], [1,1]),
}
for k, f in cases.items():
    print("%-12s fwd(grad) %.1f us  f+b %.1f us" % (k, t(f), t(fb(f))))
with torch.no_grad():
  for k, f in cases.items():
    print("%-12s fwd(nograd) %.1f us" % (k, t(f)))

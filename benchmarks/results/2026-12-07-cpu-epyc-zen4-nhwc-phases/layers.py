"""Every channels_last stride-2 depthwise layer of the network mode (float32, or DTYPE): grad_input
alone and the whole backward (input, weight, bias) of the backward op, for WHICH=torch or ours;
ONLY=<substring of "N,C,H,W,k"> for one layer. Prints 'case ms'."""
import os, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
which = os.environ.get("WHICH", "ours")
if which != "torch":
    import atrous
LAYERS = """1,144,112,112,3;1,144,56,56,3;1,144,56,56,5;1,16,112,112,3;1,192,28,28,3;1,192,56,56,5;1,240,28,28,3;
1,240,28,28,5;1,288,14,14,5;1,288,28,28,3;1,48,112,112,3;1,576,14,14,3;1,576,14,14,5;1,64,112,112,3;1,672,14,14,5;
1,72,56,56,3;1,72,56,56,5;1,816,14,14,5;1,96,112,112,3;1,96,28,28,5;8,144,40,40,3;8,144,40,40,5;8,144,80,80,3;
8,16,80,80,3;8,192,20,20,3;8,192,40,40,5;8,240,20,20,3;8,240,20,20,5;8,288,10,10,5;8,288,20,20,3;8,48,80,80,3;
8,576,10,10,3;8,576,10,10,5;8,64,80,80,3;8,672,10,10,5;8,72,40,40,3;8,72,40,40,5;8,816,10,10,5;8,96,20,20,5;8,96,80,80,3"""
ONLY = os.environ.get("ONLY", "")
DTYPE = getattr(torch, os.environ.get("DTYPE", "float32"))
def best(f, reps):
    f()
    b = 1e9
    for _ in range(reps):
        t0 = time.perf_counter(); f(); b = min(b, time.perf_counter() - t0)
    return b * 1e3
for spec in LAYERS.replace("\n", "").split(";"):
    N, C, H, W, k = map(int, spec.split(","))
    if ONLY and ONLY not in spec:
        continue
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, C, H, W, generator=g).to(DTYPE).contiguous(memory_format=torch.channels_last)
    w = torch.randn(C, 1, k, k, generator=g).to(DTYPE)
    p = k // 2
    go = torch.nn.functional.conv2d(x, w, None, 2, p, 1, C)
    reps = max(3, min(50, int(20 / (N * C * H * W / 1e6 + 0.05))))
    for name, mask in (("gi", [True, False, False]), ("all", [True, True, True])):
        if which == "torch":
            f = lambda: torch.ops.aten.convolution_backward(go, x, w, [C], [2, 2], [p, p], [1, 1], False, [0, 0], C, mask)
        else:
            f = lambda: torch.ops.atrous.depthwise_conv2d_backward(go, x, w, [2, 2], [p] * 4, [1, 1], mask)
        print(f"({N}, {C}, {H}, {W}) {k}x{k} s2 {name}", f"{best(f, reps):.4f}")

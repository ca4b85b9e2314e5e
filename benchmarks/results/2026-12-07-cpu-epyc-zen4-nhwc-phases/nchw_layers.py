"""NCHW stride-2 layers, grad_input alone (gi) and the whole backward op (all), WHICH=torch or ours. Prints case ms.
The "tiles" variants of nchw_layers_*.md ran an ad hoc build whose plan took the channel tiles up to TW outputs a row."""
import os, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
which = os.environ.get("WHICH", "ours")
if which != "torch": import atrous
for N,C,H,W,k in [(8,16,80,80,3),(8,32,80,80,3),(8,64,80,80,3),(8,96,80,80,3),(1,96,112,112,3),(1,144,56,56,5),(8,24,80,80,5),(1,16,112,112,3),(8,144,40,40,5),(1,144,112,112,3)]:
    x = torch.randn(N,C,H,W); w = torch.randn(C,1,k,k); p = k//2
    go = torch.nn.functional.conv2d(x, w, None, 2, p, 1, C)
    for name, mask in (("gi", [True, False, False]), ("all", [True, True, True])):
        if which == "torch":
            f = lambda: torch.ops.aten.convolution_backward(go, x, w, [C], [2, 2], [p, p], [1, 1], False, [0, 0], C, mask)
        else:
            f = lambda: torch.ops.atrous.depthwise_conv2d_backward(go, x, w, [2, 2], [p] * 4, [1, 1], mask)
        f(); b = 1e9
        for _ in range(15):
            t0 = time.perf_counter(); f(); b = min(b, time.perf_counter() - t0)
        print(f"({N}, {C}, {H}, {W}) {k}x{k} s2 {name}", f"{b*1e3:.4f}")

"""NCHW 3x3 depthwise layers of MobileNetV2/V3, EfficientNet and MobileNetV1, the weight gradient alone (gw) and
the whole backward op (all), WHICH=torch or ours. Prints case ms (min of 15)."""
import os, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
which = os.environ.get("WHICH", "ours")
if which != "torch": import atrous
for N,C,H,W,s in [(8,32,80,80,1),(8,96,80,80,2),(8,144,40,40,1),(8,144,40,40,2),(8,192,20,20,1),(4,256,28,28,1),
                  (1,32,112,112,1),(1,144,56,56,1),(1,192,28,28,1),(2,728,19,19,1)]:
    x = torch.randn(N,C,H,W); w = torch.randn(C,1,3,3)
    go = torch.randn_like(torch.nn.functional.conv2d(x, w, None, s, 1, 1, C))
    for name, mask in (("gw", [False, True, False]), ("all", [True, True, True])):
        if which == "torch":
            f = lambda: torch.ops.aten.convolution_backward(go, x, w, [C], [s, s], [1, 1], [1, 1], False, [0, 0], C, mask)
        else:
            f = lambda: torch.ops.atrous.depthwise_conv2d_backward(go, x, w, [s, s], [1] * 4, [1, 1], mask)
        f(); b = 1e9
        for _ in range(15):
            t0 = time.perf_counter(); f(); b = min(b, time.perf_counter() - t0)
        print(f"({N}, {C}, {H}, {W}) 3x3 s{s} {name}", f"{b*1e3:.4f}")

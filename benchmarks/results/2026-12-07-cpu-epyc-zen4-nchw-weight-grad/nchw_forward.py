"""NCHW 3x3 depthwise layers of the network mode (MobileNetV2, EfficientNet-B0, MobileNetV1), forward (fwd) and the
whole backward op (all), WHICH=torch or ours. Prints case ms (min of 20)."""
import os, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
which = os.environ.get("WHICH", "ours")
if which != "torch": import atrous
for N,C,H,W,s in [(8,32,80,80,1),(8,96,80,80,2),(8,144,40,40,1),(8,144,40,40,2),(8,192,20,20,1),(4,256,28,28,1),
                  (1,32,112,112,1),(1,96,112,112,2)]:
    x = torch.randn(N,C,H,W); w = torch.randn(C,1,3,3) / 3; b = torch.randn(C)
    go = torch.randn_like(torch.nn.functional.conv2d(x, w, b, s, 1, 1, C))
    if which == "torch":
        fwd = lambda: torch.nn.functional.conv2d(x, w, b, s, 1, 1, C)
        bwd = lambda: torch.ops.aten.convolution_backward(go, x, w, [C], [s, s], [1, 1], [1, 1], False, [0, 0], C, [True] * 3)
    else:
        fwd = lambda: atrous.depthwise_conv2d(x, w, b, s, 1)
        bwd = lambda: torch.ops.atrous.depthwise_conv2d_backward(go, x, w, [s, s], [1] * 4, [1, 1], [True] * 3)
    for name, f in (("fwd", fwd), ("all", bwd)):
        f(); best = 1e9
        for _ in range(20):
            t0 = time.perf_counter(); f(); best = min(best, time.perf_counter() - t0)
        print(f"({N}, {C}, {H}, {W}) 3x3 s{s} {name}", f"{best*1e3:.4f}")

# channels_last forward of layers whose channels leave a last block of half a vector (24, 40, 72, 88, 120 float32 channels with 16 lanes), WHICH=torch or ours; prints "case ms".
import os, sys, time, torch
import torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
which = os.environ.get("WHICH", "ours")
if which != "torch": import atrous
for N, C, H, k, s in [(8,24,80,3,1),(8,40,80,3,1),(8,72,40,3,1),(8,40,40,5,1),(8,24,80,5,1),(8,120,40,5,1),(8,88,20,3,1),(8,72,80,3,2),(1,24,112,3,1),(8,40,80,5,2),(8,32,80,3,1)]:
    x = torch.randn(N, C, H, H).contiguous(memory_format=torch.channels_last); w = torch.randn(C, 1, k, k)
    f = (lambda: F.conv2d(x, w, None, s, k // 2, 1, C)) if which == "torch" else (lambda: atrous.depthwise_conv2d(x, w, None, s, k // 2))
    f(); b = 1e9
    for _ in range(20):
        t0 = time.perf_counter(); f(); b = min(b, time.perf_counter() - t0)
    print(f"({N}, {C}, {H}, {H}) {k}x{k} s{s}", f"{b*1e3:.4f}")

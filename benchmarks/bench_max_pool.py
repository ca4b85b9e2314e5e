"""atrous.max_pool2d against F.max_pool2d on the pooling layers of SegNet, ENet, VGG and the ResNet
stem, forward and forward+backward, both layouts.

Prints torch's time, ours and the ratio torch/ours (above 1: we are faster), and the forward's
share of a same-size copy: the time of copying the bytes the forward must move (input read,
values and, with indices, int64 indices written), measured in the same run (100%: the memory
floor at that size).

    python benchmarks/bench_max_pool.py [--device cpu|cuda] [--threads N] [--markdown results.md]
"""

import sys

import torch
import torch.nn.functional as F
from common import Report, alternate, device_header, emit_comparison, same_size_copy, suite_parser, suite_targets

import atrous

# (name, N, C, H, W of the pooled input, kernel, stride, padding, with indices). CUDA runs batch
# N * 8 (--cuda-batch-scale).
CASES = [
    ("SegNet enc1 64ch 360x480", 1, 64, 360, 480, 2, 2, 0, True),
    ("SegNet enc2 128ch 180x240", 1, 128, 180, 240, 2, 2, 0, True),
    ("SegNet enc3 256ch 90x120", 1, 256, 90, 120, 2, 2, 0, True),
    ("SegNet enc5 512ch 23x30", 1, 512, 23, 30, 2, 2, 0, True),
    ("SegNet enc3 256ch 90x120 b8", 8, 256, 90, 120, 2, 2, 0, True),
    ("SegNet enc4 512ch 45x60 b8", 8, 512, 45, 60, 2, 2, 0, True),
    ("VGG 64ch 224x224 b8", 8, 64, 224, 224, 2, 2, 0, True),
    ("VGG 256ch 56x56 b8, no indices", 8, 256, 56, 56, 2, 2, 0, False),
    ("ENet down 16ch 256x256", 1, 16, 256, 256, 2, 2, 0, True),
    ("ENet down 64ch 128x128 b8", 8, 64, 128, 128, 2, 2, 0, True),
    ("ResNet stem 3x3/2 64ch 112x112 b8", 8, 64, 112, 112, 3, 2, 1, False),
    ("ResNet stem 3x3/2 64ch 112x112 b1", 1, 64, 112, 112, 3, 2, 1, False),
]


def run_case(case, device, layout, args):
    name, n, c, h, w, k, s, p, with_idx = case
    if device == "cuda":
        n *= args.cuda_batch_scale
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=g).to(device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    fns = {
        "torch": lambda t: F.max_pool2d(t, k, s, p, return_indices=with_idx),
        "ours": lambda t: atrous.max_pool2d(t, k, s, p, return_indices=with_idx),
    }
    ref, got = fns["torch"](x), fns["ours"](x)
    for a, b in zip(ref, got) if with_idx else [(ref, got)]:
        assert torch.equal(a, b), name
    out = ref[0] if with_idx else ref
    xg = x.detach().clone().requires_grad_()
    go = torch.randn_like(out)
    first = "fn(v)[0]" if with_idx else "fn(v)"
    results = {
        "forward": alternate("fn(v)", {k_: dict(fn=f, v=x) for k_, f in fns.items()},
                             args.rounds, args.threads, args.min_run_time),
        "forward+backward": alternate(f"torch.autograd.grad({first}, v, go)",
                                      {k_: dict(fn=f, v=xg, go=go, torch=torch) for k_, f in fns.items()},
                                      args.rounds, args.threads, args.min_run_time),
    }
    moved = x.numel() * x.element_size() + out.numel() * (out.element_size() + (8 if with_idx else 0))
    results["copy"] = same_size_copy(moved, device, args.rounds, args.threads, args.min_run_time)
    return results, moved


def main():
    parser = suite_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="one round, shorter timing")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.min_run_time = 1, 0.1
    devices, layouts = suite_targets(args)
    emit = Report()
    for device in devices:
        bandwidth = device_header(emit, device, args, "max_pool2d, {device}, float32")
        emit_comparison(emit, ((case[0], layout, *run_case(case, device, layout, args))
                               for case in CASES for layout in layouts), bandwidth, same_size_copy=True,
                        total=len(CASES) * len(layouts))
    emit.write(args.markdown)
    emit.write_json(args.json, args.threads)


if __name__ == "__main__":
    sys.exit(main())

"""atrous.max_unpool2d against F.max_unpool2d on SegNet and ENet decoder stages and an overlapping
3x3/2 case, forward and forward+backward, both layouts.

Prints torch's time, ours and the ratio torch/ours (above 1: we are faster), the forward's share of
a same-size copy (the time of copying the bytes it must move: values and indices read once, the
output written once, measured in the same run; 100%: the memory floor at that size) and, on CUDA,
its effective bandwidth as a share of the GPU's measured copy bandwidth. Indices come from
F.max_pool2d, as in a real decoder.

    python benchmarks/bench_max_unpool.py [--device cpu|cuda] [--markdown results.md] [--json results.json]
"""

import sys

import torch
import torch.nn.functional as F
from common import Report, alternate, device_header, emit_comparison, same_size_copy, suite_parser, suite_targets

import atrous

# (name, N, C, H, W of the pooled input to the unpool, kernel, stride, padding, output H, W). CUDA
# runs batch N * 8 (--cuda-batch-scale).
CASES = [
    ("SegNet dec 512ch 12x15", 2, 512, 12, 15, 2, 2, 0, 24, 30),
    ("SegNet dec 256ch 45x60", 2, 256, 45, 60, 2, 2, 0, 90, 120),
    ("SegNet dec 128ch 90x120", 2, 128, 90, 120, 2, 2, 0, 180, 240),
    ("SegNet dec 64ch 180x240", 2, 64, 180, 240, 2, 2, 0, 360, 480),
    ("ENet 128ch 64x64", 2, 128, 64, 64, 2, 2, 0, 128, 128),
    ("ENet 64ch 128x128", 2, 64, 128, 128, 2, 2, 0, 256, 256),
    ("overlapping 3x3/2 64ch 56x56", 2, 64, 56, 56, 3, 2, 1, 112, 112),
]


def run_case(case, device, layout, args):
    name, n, c, h, w, k, s, p, oh, ow = case
    if device == "cuda":
        n *= args.cuda_batch_scale
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, oh, ow, generator=g).to(device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    vals, idx = F.max_pool2d(x, k, s, p, return_indices=True)
    assert vals.shape[-2:] == (h, w)
    size = (oh, ow)
    fns = {
        "torch": lambda v: F.max_unpool2d(v, idx, k, s, p, size),
        "ours": lambda v: atrous.max_unpool2d(v, idx, k, s, p, size, validate_indices=args.validate),
    }
    assert torch.equal(fns["ours"](vals), fns["torch"](vals))
    vg = vals.detach().clone().requires_grad_()
    go = torch.randn_like(fns["torch"](vals))
    results = {
        "forward": alternate("fn(v)", {k_: dict(fn=f, v=vals, torch=torch) for k_, f in fns.items()},
                             args.rounds, args.threads, args.min_run_time),
        "forward+backward": alternate("torch.autograd.grad(fn(v), v, go)",
                                      {k_: dict(fn=f, v=vg, go=go, torch=torch) for k_, f in fns.items()},
                                      args.rounds, args.threads, args.min_run_time),
    }
    moved = vals.numel() * (vals.element_size() + idx.element_size()) + go.numel() * go.element_size()
    results["copy"] = same_size_copy(moved, device, args.rounds, args.threads, args.min_run_time)
    return results, moved


def main():
    parser = suite_parser(__doc__)
    parser.add_argument("--no-validate", dest="validate", action="store_false",
                        help="time ours with validate_indices=False (no host synchronisation on CUDA)")
    args = parser.parse_args()
    devices, layouts = suite_targets(args)
    emit = Report()
    for device in devices:
        title = "max_unpool2d, {device}, float32, int64 indices" + ("" if args.validate else ", validate_indices=False")
        bandwidth = device_header(emit, device, args, title)
        emit_comparison(emit, ((case[0], layout, *run_case(case, device, layout, args))
                               for case in CASES for layout in layouts), bandwidth, same_size_copy=True,
                        total=len(CASES) * len(layouts))
    emit.write(args.markdown)
    emit.write_json(args.json, args.threads)


if __name__ == "__main__":
    sys.exit(main())

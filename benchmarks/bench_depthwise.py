"""atrous.depthwise_conv2d against F.conv2d(groups=C), on shapes from real networks.

Prints, per case, layout and direction (forward; forward+backward of input, weight and bias), the
torch time, ours, and the ratio torch/ours (above 1: we are faster), the forward's share of a
same-size copy (the time of copying the bytes it must move, input, weight and output, measured in
the same run; 100%: the memory floor at that size), then the geometric means. On CUDA it also
prints the forward's effective bandwidth as a share of this GPU's measured copy bandwidth.

    python benchmarks/bench_depthwise.py                 # every available device, float32
    python benchmarks/bench_depthwise.py --device cuda --dtype bfloat16
    python benchmarks/bench_depthwise.py --markdown results.md --json results.json
    python benchmarks/bench_depthwise.py --networks      # every depthwise layer of torchvision's
                                                         # networks, all threads and 1 thread (CPU)

Timing: torch.utils.benchmark, all of the machine's threads, torch and ours measured alternately
for --rounds rounds; the reported time is the median over rounds of each round's median.
"""

import argparse
import sys

import torch
import torch.nn.functional as F
from common import Report, alternate, copy_bandwidth, cpu_name, emit_comparison, same_size_copy
from networks import NETWORKS

import atrous

# (name, N, C, H, W, k, stride, dilation); padding keeps the size (k // 2 * dilation). The CPU runs
# batch N; CUDA runs batch N * 8 (see --cuda-batch-scale).
CASES = [
    ("MobileNetV2 3x3 s1", 8, 144, 56, 56, 3, 1, 1),
    ("MobileNetV2 3x3 s2", 8, 144, 56, 56, 3, 2, 1),
    ("EfficientNet 5x5", 8, 240, 28, 28, 5, 1, 1),
    ("ConvNeXt 7x7", 8, 96, 56, 56, 7, 1, 1),
    ("ASPP 3x3 d6", 4, 256, 33, 33, 3, 1, 6),
    ("ASPP 3x3 d12", 4, 256, 33, 33, 3, 1, 12),
    ("ASPP 3x3 d18", 4, 256, 33, 33, 3, 1, 18),
    ("Xception 3x3 d2", 4, 728, 33, 33, 3, 1, 2),
    ("RepLKNet 31x31", 2, 128, 56, 56, 31, 1, 1),
]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def run_case(case, device, dtype, layout, args):
    name, n, c, h, w, k, s, d = case
    if device == "cuda":
        n *= args.cuda_batch_scale
    p = k // 2 * d
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=g).to(device, dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    wt = (torch.randn(c, 1, k, k, generator=g) / k).to(device, dtype)
    b = torch.randn(c, generator=g).to(device, dtype)
    fns = {
        "torch": lambda x, w, b: F.conv2d(x, w, b, s, p, d, groups=c),
        "ours": lambda x, w, b: atrous.depthwise_conv2d(x, w, b, s, p, d),
    }
    # Same result before timing anything.
    torch.testing.assert_close(fns["ours"](x, wt, b).float(), fns["torch"](x, wt, b).float(),
                               atol=5e-2 if dtype != torch.float32 else 1e-3, rtol=1e-2)
    xg, wg, bg = (t.detach().clone().requires_grad_() for t in (x, wt, b))
    go = torch.randn_like(fns["torch"](x, wt, b))
    results = {}
    for direction in ("forward", "forward+backward"):
        if direction == "forward":
            stmt = "fn(x, w, b)"
            env = dict(x=x, w=wt, b=b, torch=torch)
        else:
            stmt = "torch.autograd.grad(fn(x, w, b), (x, w, b), go)"
            env = dict(x=xg, w=wg, b=bg, go=go, torch=torch)
        results[direction] = alternate(stmt, {k: dict(env, fn=f) for k, f in fns.items()}, args.rounds,
                                       args.threads, args.min_run_time)
    moved = (x.numel() + wt.numel() + go.numel()) * x.element_size()
    results["copy"] = same_size_copy(moved, device, args.rounds, args.threads, args.min_run_time)
    return results, moved


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], action="append")
    parser.add_argument("--dtype", choices=list(DTYPES), action="append")
    parser.add_argument("--layout", choices=["contiguous", "channels_last"], action="append")
    parser.add_argument("--case", action="append", help="substring of a case name to run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, help="seconds per timing (default 0.3; --networks: 0.05)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--cuda-batch-scale", type=int, default=8)
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--json", help="also write every figure, with the machine it ran on, to this file")
    parser.add_argument("--networks", action="store_true",
                        help="time every depthwise layer of torchvision's networks instead (needs torchvision)")
    parser.add_argument("--network", action="append", choices=NETWORKS, help="with --networks: only these")
    parser.add_argument("--config", action="append", help="with --networks: substring of a configuration")
    args = parser.parse_args()
    args.threads_given = args.threads is not None
    if args.min_run_time is None:
        args.min_run_time = 0.05 if args.networks else 0.3
    if not args.threads_given:
        args.threads = torch.get_num_threads()
    if args.networks:
        from depthwise_networks import run_networks

        emit = Report()
        run_networks(emit, args)
        emit.write(args.markdown)
        emit.write_json(args.json, args.threads)
        return
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    layouts = args.layout or ["contiguous", "channels_last"]
    cases = [c for c in CASES if not args.case or any(s in c[0] for s in args.case)]
    emit = Report()

    for device in devices:
        dtypes = args.dtype or (["float32"] if device == "cpu" else ["float32", "bfloat16"])
        dev_name = torch.cuda.get_device_name() if device == "cuda" else cpu_name(args.threads)
        bandwidth = copy_bandwidth(device) if device == "cuda" else None
        for dtype_name in dtypes:
            dtype = DTYPES[dtype_name]
            emit(f"\n### depthwise_conv2d, {device} ({dev_name}), {dtype_name}")
            if bandwidth:
                emit(f"copy bandwidth: {bandwidth / 1e9:.0f} GB/s")
            emit("")
            emit_comparison(emit, ((case[0], layout, *run_case(case, device, dtype, layout, args))
                                   for case in cases for layout in layouts), bandwidth, same_size_copy=True,
                            total=len(cases) * len(layouts))
    emit.write(args.markdown)
    emit.write_json(args.json, args.threads)


if __name__ == "__main__":
    sys.exit(main())

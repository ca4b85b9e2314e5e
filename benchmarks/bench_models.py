"""Whole networks, as users run them, before and after atrous.convert.

Per network, configuration and layout: the time of the original eager model, of the converted one
(atrous.convert with its defaults: in eval mode batch norms are folded and depthwise -> pointwise
chains fused), and the ratio original / converted; with --compile, also the original model under
torch.compile (what a user would otherwise reach for) and the ratio compiled / converted.

Configurations: inference at batch 1 and batch 8 (eval mode, no grad) and a training step at
batch 8 (train mode: forward, a mean-square loss, backward, one SGD step with momentum).
Networks: torchvision's mobilenet_v2, mobilenet_v3_large, efficientnet_b0, convnext_tiny and
deeplabv3_mobilenet_v3_large (random weights, nothing downloaded) and a SegNet-style
encoder-decoder whose max-pool indices feed its max-unpooling.

    python benchmarks/bench_models.py --quick           # 4 networks, 2 configurations: about 4 minutes on 2 cores
    python benchmarks/bench_models.py --compile --json results.json --markdown results.md

Timing: torch.utils.benchmark; the variants are measured alternately for --rounds rounds, and the
reported time is the median over rounds of each round's median.
"""

import argparse
import copy
import sys

import torch
from torch import nn
import networks
from common import Report, alternate, commit, cpu_model, cpu_name, geomean, progress

import atrous

NETWORKS = ["mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny",
            "deeplabv3_mobilenet_v3_large", "segnet"]
QUICK_NETWORKS = ["mobilenet_v2", "efficientnet_b0", "convnext_tiny", "segnet"]
# (name, mode, batch, size)
CONFIGS = [("inference batch 1, 224 px", "eval", 1, 224), ("inference batch 8, 224 px", "eval", 8, 224),
           ("training step batch 8, 160 px", "train", 8, 160)]
QUICK_CONFIGS = [CONFIGS[0], CONFIGS[2]]


class SegNet(nn.Module):
    """A SegNet-style encoder-decoder (narrowed): conv-BN-ReLU stages, each encoder stage ending in
    a 2x2 max-pool whose indices its decoder stage unpools with; depthwise-separable decoder convs."""

    def __init__(self, widths=(32, 64, 128, 128), classes=12):
        super().__init__()
        self.enc = nn.ModuleList()
        self.pools = nn.ModuleList()
        c = 3
        for w in widths:
            self.enc.append(nn.Sequential(nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                                          nn.ReLU(inplace=True)))
            self.pools.append(nn.MaxPool2d(2, return_indices=True))
            c = w
        self.unpools = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w in reversed((widths[0],) + widths[:-1]):
            self.unpools.append(nn.MaxUnpool2d(2))
            self.dec.append(nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c),
                                          nn.ReLU(inplace=True), nn.Conv2d(c, w, 1, bias=False), nn.BatchNorm2d(w),
                                          nn.ReLU(inplace=True)))
            c = w
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        stack = []
        for enc, pool in zip(self.enc, self.pools):
            x = enc(x)
            size = x.shape[-2:]
            x, idx = pool(x)
            stack.append((idx, size))
        for unpool, dec in zip(self.unpools, self.dec):
            idx, size = stack.pop()
            x = dec(unpool(x, idx, output_size=size))
        return self.head(x)


def build(name):
    torch.manual_seed(0)
    return SegNet() if name == "segnet" else networks.build(name)


def output_of(out):
    return out["out"] if isinstance(out, dict) else out


def variants(name, mode, layout, compile_too):
    """name -> model: the original, the converted and (optionally) the original compiled."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = build(name).to(memory_format=fmt).train(mode == "train")
    found = {"torch": model, "atrous": atrous.convert(model)}
    if compile_too:
        found["torch.compile"] = torch.compile(copy.deepcopy(model))
    return found


def runner(model, mode, x):
    """A callable doing one inference or one training step of `model` on x."""
    if mode == "eval":
        def infer():
            with torch.no_grad():
                model(x)
        return infer
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        output_of(model(x)).square().mean().backward()
        opt.step()
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", choices=NETWORKS, action="append")
    parser.add_argument("--config", action="append", help="a configuration by name, e.g. 'training step batch 8'")
    parser.add_argument("--layout", choices=["contiguous", "channels_last"], action="append")
    parser.add_argument("--quick", action="store_true", help="fewer networks and configurations, shorter timing")
    parser.add_argument("--compile", action="store_true", help="also time the original under torch.compile")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", help="write every figure to this JSON file")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    networks = args.network or (QUICK_NETWORKS if args.quick else NETWORKS)
    configs = [c for c in (QUICK_CONFIGS if args.quick and not args.config else CONFIGS)
               if not args.config or any(c[0].startswith(want) for want in args.config)]
    layouts = args.layout or ["contiguous", "channels_last"]
    rounds, min_run_time = (2, 0.3) if args.quick else (args.rounds, args.min_run_time)

    emit = Report()
    emit(f"### Whole networks, float32, {cpu_name(args.threads)} ({cpu_model()}), torch {torch.__version__}, "
         f"atrous {atrous.__version__} at {commit()}")
    emit("")
    columns = ["network", "configuration", "layout", "torch ms", "atrous ms", "speedup"]
    if args.compile:
        columns += ["torch.compile ms", "vs compile"]
    emit.table_header(columns)
    records = emit.records
    cases = [(c, n, l) for c in configs for n in networks for l in layouts]
    for (config, mode, batch, size), name, layout in progress(cases, len(cases), "whole networks"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
        models = variants(name, mode, layout, args.compile)
        envs = {k: {"run": runner(m, mode, x)} for k, m in models.items()}
        for env in envs.values():  # warm-up (and compilation)
            env["run"]()
            env["run"]()
        times = alternate("run()", envs, rounds, args.threads, min_run_time)
        ratio = times["torch"] / times["atrous"]
        row = (f"| {name} | {config} | {layout} | {times['torch'] * 1e3:.1f} | {times['atrous'] * 1e3:.1f} | "
               f"{ratio:.2f}x |")
        if args.compile:
            row += f" {times['torch.compile'] * 1e3:.1f} | {times['torch.compile'] / times['atrous']:.2f}x |"
        emit(row)
        emit.record(network=name, configuration=config, layout=layout, batch=batch, size=size,
                    seconds=times, speedup=ratio)
    emit("")
    for config, *_ in configs:
        rs = [r["speedup"] for r in records if r["configuration"] == config]
        if rs:
            emit(f"{config}: geometric-mean speedup {geomean(rs):.2f}x, slower than the original in "
                 f"{sum(r < 1 for r in rs)} of {len(rs)}")
    emit.write(args.markdown)
    emit.write_json(args.json, args.threads)


if __name__ == "__main__":
    sys.exit(main())

"""The network mode of bench_depthwise.py: every depthwise layer of torchvision's networks, timed at
the shape its network gives it, against F.conv2d(groups=C).

Configurations: batch 1 at 224 px (forward), batch 8 at 160 px (forward, and forward+backward of
input, weight and bias when the layer has one), each in NCHW and channels_last, at all threads and
at 1 thread. Per distinct layer: torch ms, ours ms, the ratio torch/ours, and the forward's share of
a same-size copy (the bytes the forward must move, input + weight + output, copied in the same run:
100% is the memory floor). Per network: the totals over its layers (each distinct layer weighed by
how often the network has it) and its worst layer. A layer slower than torch is marked `SLOWER`,
or `slower, at floor` when our forward is within 10% of the same-size copy.
"""

import torch
import torch.nn.functional as F
from common import alternate, cpu_name, progress, same_size_copy
from networks import NETWORKS, unique_layers

import atrous

CONFIGS = [  # (name, batch, image size, directions)
    ("batch 1, 224 px", 1, 224, ("forward",)),
    ("batch 8, 160 px", 8, 160, ("forward", "forward+backward")),
]


def _tensors(layer, device, dtype, layout):
    g = torch.Generator().manual_seed(0)
    n, c, h, w = layer.shape
    x = torch.randn(layer.shape, generator=g).to(device, dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    wt = (torch.randn(layer.out_channels, 1, *layer.kernel, generator=g) / layer.kernel[0]).to(device, dtype)
    b = torch.randn(layer.out_channels, generator=g).to(device, dtype) if layer.bias else None
    return x, wt, b


def time_layer(layer, device, dtype, layout, directions, args, copies):
    """{direction: {"torch": s, "ours": s}} and the forward's same-size copy seconds."""
    x, wt, b = _tensors(layer, device, dtype, layout)
    c = layer.shape[1]
    s, p, d = layer.stride, layer.padding, layer.dilation
    fns = {
        "torch": lambda x, w, b: F.conv2d(x, w, b, s, p, d, groups=c),
        "ours": lambda x, w, b: atrous.depthwise_conv2d(x, w, b, s, p, d),
    }
    ref = fns["torch"](x, wt, b)
    torch.testing.assert_close(fns["ours"](x, wt, b).float(), ref.float(),
                               atol=5e-2 if dtype != torch.float32 else 1e-3, rtol=1e-2)
    results = {}
    for direction in directions:
        if direction == "forward":
            stmt, env = "fn(x, w, b)", dict(x=x, w=wt, b=b)
        else:
            params = [t.detach().clone().requires_grad_() for t in (x, wt) + ((b,) if b is not None else ())]
            env = dict(x=params[0], w=params[1], b=params[2] if b is not None else None, params=params,
                       go=torch.randn_like(ref), torch=torch)
            stmt = "torch.autograd.grad(fn(x, w, b), params, go)"
        results[direction] = alternate(stmt, {k: dict(env, fn=f) for k, f in fns.items()}, args.rounds,
                                       args.threads, args.min_run_time)
    moved = (x.numel() + wt.numel() + ref.numel()) * x.element_size()
    if moved not in copies:
        copies[moved] = same_size_copy(moved, device, args.rounds, args.threads, args.min_run_time)
    return results, copies[moved]


def _verdict(ratio, floor_share):
    if ratio >= 1:
        return ""
    return "slower, at floor" if floor_share >= 0.9 else "SLOWER"


def run_config(emit, config, device, dtype_name, layout, args, networks):
    name, batch, size, directions = config
    dtype = getattr(torch, dtype_name)
    layers = unique_layers(networks, batch, size)
    emit(f"\n#### {name}, {layout}, {dtype_name}, {cpu_name(args.threads)}\n")
    cols = ["layer (N, C, H, W) kernel", "used by"]
    for direction in directions:
        cols += [f"{direction} torch ms", "ours ms", "ratio"]
    emit.table_header(cols + ["fwd % of same-size copy", "note"])
    copies, timed = {}, []
    for u in progress(layers, len(layers), f"{name}, {layout}"):
        res, copy_s = time_layer(u.layer, device, dtype, layout, directions, args, copies)
        timed.append((u, res, copy_s))
        emit.record(kind="layer", configuration=name, layout=layout, dtype=dtype_name, threads=args.threads,
                    layer=u.layer.describe(), used_by=dict(u.uses), same_size_copy=copy_s, **res)
        row = [u.layer.describe(), ", ".join(f"{k} x{v}" if v > 1 else k for k, v in u.uses.items())]
        notes = []
        for direction in directions:
            t, o = res[direction]["torch"], res[direction]["ours"]
            row += [f"{t * 1e3:.3f}", f"{o * 1e3:.3f}", f"{t / o:.2f}x"]
            v = _verdict(t / o, copy_s / res["forward"]["ours"])
            if v:
                notes.append(f"{direction} {v}")
        row += [f"{100 * copy_s / res['forward']['ours']:.0f}%", "; ".join(notes)]
        emit("| " + " | ".join(row) + " |")
    emit("")
    emit.table_header(["network"] + [f"{d} torch ms, ours ms, ratio" for d in directions] +
                      [f"worst {d} layer" for d in directions])
    summary = []
    for net in networks:
        row = [net]
        worst_cells = []
        for direction in directions:
            mine = [(u, r, c) for u, r, c in timed if net in u.uses]
            tt = sum(u.uses[net] * r[direction]["torch"] for u, r, _ in mine)
            to = sum(u.uses[net] * r[direction]["ours"] for u, r, _ in mine)
            row.append(f"{tt * 1e3:.2f}, {to * 1e3:.2f}, {tt / to:.2f}x")
            u, r, _ = min(mine, key=lambda e: e[1][direction]["torch"] / e[1][direction]["ours"])
            worst_cells.append(f"{r[direction]['torch'] / r[direction]['ours']:.2f}x at {u.layer.describe()}")
            summary.append((net, direction, tt / to))
            emit.record(kind="network", configuration=name, layout=layout, dtype=dtype_name, threads=args.threads,
                        network=net, direction=direction, torch=tt, ours=to)
        emit("| " + " | ".join(row + worst_cells) + " |")
    emit("")
    slower = sum(1 for _, r, c in timed for d in directions
                 if _verdict(r[d]["torch"] / r[d]["ours"], c / r["forward"]["ours"]) == "SLOWER")
    emit(f"layers slower than torch and not at the memory floor: {slower} of {len(timed) * len(directions)}")
    return summary


def run_networks(emit, args):
    networks = args.network or NETWORKS
    configs = [c for c in CONFIGS if not args.config or any(s in c[0] for s in args.config)]
    thread_counts = [args.threads] if args.threads_given else sorted({torch.get_num_threads(), 1}, reverse=True)
    layouts = args.layout or ["contiguous", "channels_last"]
    for dtype_name in args.dtype or ["float32"]:
        for threads in thread_counts:
            args.threads = threads
            emit(f"\n### depthwise_conv2d on network layers, cpu, {dtype_name}, {threads} thread(s)")
            for config in configs:
                for layout in layouts:
                    run_config(emit, config, "cpu", dtype_name, layout, args, networks)

"""atrous.separable_conv2d (fused) against the unfused torch reference (two F.conv2d calls, the
intermediate stored) and against atrous.depthwise_conv2d followed by F.conv2d.

Prints, per case, layout and direction (forward; forward+backward of input and all four weights),
the times of the three and the ratios torch/fused and (atrous dw + F.conv2d)/fused, then the
geometric means, and the memory autograd keeps between forward and backward (what is saved for
backward, measured with saved_tensors_hooks) for the reference and for the fused op, and the fused
forward's share of a same-size copy (the time of copying the bytes it must move, input, weights
and output, measured in the same run; 100%: the memory floor at that size).

    python benchmarks/bench_separable.py                  # CPU cases, float32, all threads
    python benchmarks/bench_separable.py --threads 1
    python benchmarks/bench_separable.py --networks       # every separable layer of timm's
                                                          # legacy_xception and mobilenetv1_100
    python benchmarks/bench_separable.py --markdown results.md --json results.json

Timing: torch.utils.benchmark; the implementations are measured alternately for --rounds rounds;
the reported time is the median over rounds of each round's median.
"""

import argparse
import sys

import torch
import torch.nn.functional as F
from common import Report, alternate, cpu_name, geomean, progress, same_size_copy

import atrous

# (name, N, C, C_out, H, W, k, stride, dilation, activation); padding keeps the size.
CASES = [
    ("MobileNetV1 64->128 s2", 4, 64, 128, 112, 112, 3, 2, 1, "relu"),
    ("MobileNetV1 128->128", 4, 128, 128, 56, 56, 3, 1, 1, "relu"),
    ("MobileNetV1 256->256", 4, 256, 256, 28, 28, 3, 1, 1, "relu"),
    ("MobileNetV1 512->512", 4, 512, 512, 14, 14, 3, 1, 1, "relu"),
    ("MobileNetV1 1024->1024", 4, 1024, 1024, 7, 7, 3, 1, 1, "relu"),
    ("Xception entry 128->256", 2, 128, 256, 75, 75, 3, 1, 1, None),
    ("Xception entry 256->728", 2, 256, 728, 38, 38, 3, 1, 1, None),
    ("Xception middle 728->728", 2, 728, 728, 19, 19, 3, 1, 1, None),
    ("ASPP 2048->256 d6", 2, 2048, 256, 32, 32, 3, 1, 6, None),
    ("ASPP 2048->256 d12", 2, 2048, 256, 32, 32, 3, 1, 12, None),
    ("ASPP 2048->256 d18", 2, 2048, 256, 32, 32, 3, 1, 18, None),
    ("DeepLabV3+ decoder 304->256", 2, 304, 256, 128, 128, 3, 1, 1, None),
]

ACTS = {None: lambda t: t, "relu": F.relu, "relu6": F.relu6}


def implementations(s, p, d, act):
    a = ACTS[act]
    return {
        "torch": lambda x, dw, pw, db, pb: F.conv2d(a(F.conv2d(x, dw, db, s, p, d, groups=x.shape[1])), pw, pb),
        "atrous dw": lambda x, dw, pw, db, pb: F.conv2d(a(atrous.depthwise_conv2d(x, dw, db, s, p, d)), pw, pb),
        "fused": lambda x, dw, pw, db, pb: atrous.separable_conv2d(x, dw, pw, db, pb, s, p, d, act),
    }


def saved_bytes(fn, args):
    """Bytes autograd keeps for backward (distinct storages of the saved tensors)."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return sum(storages.values())


def time_shape(n, c, co, h, w, k, s, d, act, layout, dtype, args, bias=True):
    p = k // 2 * d
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=g).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    dw = (torch.randn(c, 1, k, k, generator=g) / k).to(dtype)
    pw = (torch.randn(co, c, 1, 1, generator=g) / c ** 0.5).to(dtype)
    db = torch.randn(c, generator=g).to(dtype) if bias else None
    pb = torch.randn(co, generator=g).to(dtype) if bias else None
    fns = implementations(s, p, d, act)
    ref = fns["torch"](x, dw, pw, db, pb)
    tol = 1e-3 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(fns["fused"](x, dw, pw, db, pb), ref, atol=tol, rtol=tol)
    leaves = [t.detach().clone().requires_grad_() for t in (x, dw, pw, db, pb) if t is not None]
    full = leaves if bias else leaves + [None, None]
    go = torch.randn_like(ref)
    results = {
        "forward": alternate("fn(*a)", {k: dict(fn=f, a=(x, dw, pw, db, pb)) for k, f in fns.items()}, args.rounds,
                             args.threads, args.min_run_time),
        "forward+backward": alternate("torch.autograd.grad(fn(*a), leaves, go)",
                                      {k: dict(fn=f, a=full, leaves=leaves, go=go, torch=torch)
                                       for k, f in fns.items()}, args.rounds, args.threads, args.min_run_time),
    }
    moved = (x.numel() + dw.numel() + pw.numel() + ref.numel()) * x.element_size()
    results["copy"] = same_size_copy(moved, "cpu", args.rounds, args.threads, args.min_run_time)
    memory = {k: saved_bytes(f, full) for k, f in fns.items()}
    return results, memory


def emit_rows(emit, rows, total=None):
    emit.table_header(["case", "layout", "fwd torch ms", "fwd atrous dw + conv ms", "fwd fused ms", "fwd vs torch",
                       "fwd vs atrous dw", "f+b torch ms", "f+b atrous dw + conv ms", "f+b fused ms", "f+b vs torch",
                       "f+b vs atrous dw", "saved MB torch", "saved MB fused", "fwd % of same-size copy"])
    ratios = {k: [] for k in ("forward", "forward+backward", "dw forward", "dw forward+backward")}
    for name, layout, res, mem in progress(rows, total, emit.heading):
        emit.record(case=name, layout=layout, saved_bytes=mem, same_size_copy=res["copy"],
                    **{d: res[d] for d in ("forward", "forward+backward")})
        cells = [name, layout]
        for direction in ("forward", "forward+backward"):
            r = res[direction]
            vt, vd = r["torch"] / r["fused"], r["atrous dw"] / r["fused"]
            ratios[direction].append(vt)
            ratios["dw " + direction].append(vd)
            cells += [f"{r['torch'] * 1e3:.3f}", f"{r['atrous dw'] * 1e3:.3f}", f"{r['fused'] * 1e3:.3f}",
                      f"{vt:.2f}x", f"{vd:.2f}x"]
        cells += [f"{mem['torch'] / 2**20:.1f}", f"{mem['fused'] / 2**20:.1f}",
                  f"{100 * res['copy'] / res['forward']['fused']:.0f}%"]
        emit("| " + " | ".join(cells) + " |")
    emit("")
    emit(f"geometric-mean speedup over torch: forward {geomean(ratios['forward']):.2f}x, forward+backward "
         f"{geomean(ratios['forward+backward']):.2f}x; over atrous dw + F.conv2d: forward "
         f"{geomean(ratios['dw forward']):.2f}x, forward+backward {geomean(ratios['dw forward+backward']):.2f}x; "
         f"slower than torch in {sum(r < 1 for r in ratios['forward'])} forward and "
         f"{sum(r < 1 for r in ratios['forward+backward'])} forward+backward of {len(ratios['forward'])} cases")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--layout", choices=["contiguous", "channels_last"], action="append")
    parser.add_argument("--case", action="append", help="substring of a case name to run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--json", help="also write every figure, with the machine it ran on, to this file")
    parser.add_argument("--networks", action="store_true", help="time the separable layers of timm's networks")
    parser.add_argument("--config", action="append", help="with --networks: substring of a configuration")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    layouts = args.layout or ["contiguous", "channels_last"]
    emit = Report()
    if args.networks:
        from separable_networks import run_networks

        run_networks(emit, args, layouts, dtype, time_shape, emit_rows)
    else:
        emit(f"\n### separable_conv2d, cpu ({cpu_name(args.threads)}), {args.dtype}\n")
        cases = [c for c in CASES if not args.case or any(s in c[0] for s in args.case)]
        emit_rows(emit, ((c[0], layout, *time_shape(*c[1:], layout, dtype, args)) for c in cases for layout in layouts),
                  len(cases) * len(layouts))
    emit.write(args.markdown)
    emit.write_json(args.json, args.threads)


if __name__ == "__main__":
    sys.exit(main())

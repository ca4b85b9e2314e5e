"""Every benchmark suite in one command: the op suites, the real-network layer modes and whole
networks before and after atrous.convert.

    python benchmarks/run.py --quick                    # what `make bench` runs: shorter timing, fewer networks
    python benchmarks/run.py                            # every suite at full length
    python benchmarks/run.py --suite models --suite max_pool --threads 1
    python benchmarks/run.py --suite depthwise_networks --dtype bfloat16 --layout channels_last
    python benchmarks/run.py --out benchmarks/results/2026-12-03-mine

Each suite runs as its own process (its own allocator state and threads) and prints its table as
it goes, with a progress bar where tqdm is installed; the run writes, under --out, per suite a
markdown file and a JSON file, then everything.md (all tables, with the machine, torch version and
commit), results.json (every figure of every suite, with the machine, its CPU flags, torch and the
commit) and, where matplotlib is installed, the plots: cases.png (the speed-up over torch of each
op case), floor.png (each op forward's share of a same-size copy: 100% is the memory floor) and
models.png (the speed-up of each whole network and configuration).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

from common import commit, cpu_model

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> (script and arguments, arguments added by --quick, options it takes)
SUITES = {
    "depthwise": (["bench_depthwise.py"], ["--rounds", "1", "--min-run-time", "0.1"],
                  {"threads", "layout", "device", "dtype"}),
    "depthwise_networks": (["bench_depthwise.py", "--networks"],
                           ["--network", "mobilenet_v2", "--network", "efficientnet_b0", "--config", "batch 8",
                            "--rounds", "1"], {"threads", "layout", "device", "dtype"}),
    "max_unpool": (["bench_max_unpool.py"], ["--rounds", "1", "--min-run-time", "0.1"], {"threads", "layout", "device"}),
    "max_pool": (["bench_max_pool.py"], ["--quick"], {"threads", "layout", "device"}),
    "separable": (["bench_separable.py"], ["--rounds", "1", "--min-run-time", "0.1"], {"threads", "layout", "dtype"}),
    "separable_networks": (["bench_separable.py", "--networks"], ["--rounds", "1", "--min-run-time", "0.05"],
                           {"threads", "layout", "dtype"}),
    "models": (["bench_models.py"], ["--quick"], {"threads", "layout"}),
}


# The op suites whose cases the plots show, and the name of "ours" in their records.
OP_SUITES = {"depthwise": "ours", "max_pool": "ours", "max_unpool": "ours", "separable": "fused"}


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _title(data, what):
    m = data["machine"]
    return (f"{what}: {m['cpu']}, {m['threads']} threads, kernels {m['cpu_capability']}, torch {data['torch']}, "
            f"{data['commit']}, {data['date'][:10]}")


def _op_tables(results):
    """(suite, table heading, its records) for every op suite table in results.json's data."""
    for suite, ours in OP_SUITES.items():
        records = results["suites"].get(suite, [])
        for table in dict.fromkeys(r["table"] for r in records):
            yield suite, ours, table, [r for r in records if r["table"] == table]


def plot_cases(results, png_path, floor):
    """Per op suite table, a bar per case and layout: the speed-up over torch (forward and
    forward+backward), or with `floor` the forward's share of a same-size copy. False without
    matplotlib or without op cases."""
    plt = _pyplot()
    tables = list(_op_tables(results))
    if plt is None or not tables:
        return False
    fig, axes = plt.subplots(len(tables), 1, figsize=(12, 3.8 * len(tables)), squeeze=False)
    for ax, (suite, ours, table, rows) in zip(axes[:, 0], tables):
        labels = [f"{r['case']} {'NHWC' if r['layout'] == 'channels_last' else 'NCHW'}" for r in rows]
        xs = range(len(rows))
        if floor:
            values = [100 * r["same_size_copy"] / r["forward"][ours] if r.get("same_size_copy") else 0 for r in rows]
            ax.bar(xs, values, color="tab:blue")
            ax.axhline(100, color="black", linewidth=0.8)
            ax.set_ylabel("% of same-size copy")
            for i, v in enumerate(values):
                ax.text(i, v, f"{v:.0f}", ha="center", va="bottom", fontsize=6)
        else:
            for j, direction in enumerate(("forward", "forward+backward")):
                values = [r[direction]["torch"] / r[direction][ours] for r in rows]
                ax.bar([x + (j - 0.5) * 0.4 for x in xs], values, width=0.4, label=direction,
                       color=["tab:green", "tab:olive"][j])
                for x, v in zip(xs, values):
                    ax.text(x + (j - 0.5) * 0.4, v, f"{v:.1f}", ha="center", va="bottom", fontsize=5)
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_yscale("log")
            ax.set_ylabel("torch / atrous")
            ax.legend(fontsize=7)
        ax.set_xticks(list(xs), labels, fontsize=6, rotation=35, ha="right")
        ax.set_title(f"{suite}: {table}", fontsize=9)
    what = "forward's share of a same-size copy (100% = memory floor)" if floor else "speed-up over torch per op case"
    fig.suptitle(_title(results, what), fontsize=9)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return True


def plot_models(json_path, png_path):
    """A bar chart of original / converted per network, configuration and layout; False without
    matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    with open(json_path) as f:
        data = json.load(f)
    records = data["records"]
    configs = list(dict.fromkeys(r["configuration"] for r in records))
    fig, axes = plt.subplots(len(configs), 1, figsize=(11, 3.6 * len(configs)), squeeze=False)
    short = {"deeplabv3_mobilenet_v3_large": "deeplabv3_mnv3"}
    for ax, config in zip(axes[:, 0], configs):
        rows = [r for r in records if r["configuration"] == config]
        labels = [f"{short.get(r['network'], r['network'])} {'NHWC' if r['layout'] == 'channels_last' else 'NCHW'}"
                  for r in rows]
        values = [r["speedup"] for r in rows]
        ax.bar(range(len(rows)), values, color=["tab:green" if v >= 1 else "tab:red" for v in values])
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(rows)), labels, fontsize=7, rotation=30, ha="right")
        ax.set_ylabel("original / converted")
        ax.set_title(config, fontsize=10)
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    fig.suptitle(_title(data, "atrous.convert, whole networks, original / converted"), fontsize=9)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=list(SUITES), action="append", help="run only these (repeatable)")
    parser.add_argument("--quick", action="store_true", help="shorter timing, fewer networks")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--layout", choices=["contiguous", "channels_last"], action="append")
    parser.add_argument("--device", choices=["cpu", "cuda"], action="append")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
                        help="for the suites that take one (depthwise and separable; the others run float32)")
    parser.add_argument("--out", help="folder for the results (default: a dated folder under /tmp)")
    args = parser.parse_args()
    suites = args.suite or list(SUITES)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    out = os.path.abspath(args.out or os.path.join("/tmp", f"atrous-bench-{stamp}"))
    os.makedirs(out, exist_ok=True)

    import torch

    header = (f"# atrous benchmarks, {stamp}, commit {commit()}: {cpu_model()}, "
              f"torch {torch.__version__}, {'quick' if args.quick else 'full'} run")
    sections = [header, ""]
    # The suites run from this folder: a PYTHONPATH relative to the caller's would not find atrous.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p))
    for i, name in enumerate(suites, 1):
        script, quick, takes = SUITES[name]
        cmd = [sys.executable, os.path.join(HERE, script[0]), *script[1:]]
        if args.quick:
            cmd += quick
        if args.threads and "threads" in takes:
            cmd += ["--threads", str(args.threads)]
        for layout in args.layout or []:
            cmd += ["--layout", layout] if "layout" in takes else []
        for device in args.device or []:
            cmd += ["--device", device] if "device" in takes else []
        if args.dtype and "dtype" in takes:
            cmd += ["--dtype", args.dtype]
        md = os.path.join(out, f"{name}.md")
        cmd += ["--markdown", md, "--json", os.path.join(out, f"{name}.json")]
        print(f"\n[{i}/{len(suites)}] {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.time()
        rc = subprocess.run(cmd, cwd=HERE, env=env).returncode
        print(f"[{i}/{len(suites)}] {name}: {'done' if rc == 0 else f'FAILED (exit {rc})'} in "
              f"{time.time() - start:.0f} s", flush=True)
        if rc != 0:
            return rc
        with open(md) as f:
            sections += [f"## {name}", "", f.read()]
    with open(os.path.join(out, "everything.md"), "w") as f:
        f.write("\n".join(sections))
    results = {"suites": {}}
    for name in suites:
        with open(os.path.join(out, f"{name}.json")) as f:
            data = json.load(f)
        results["suites"][name] = data.pop("records")
        results.update(data)  # the machine, torch, commit and date (the same for every suite)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    drawn = [png for png, ok in (
        ("cases.png", plot_cases(results, os.path.join(out, "cases.png"), floor=False)),
        ("floor.png", plot_cases(results, os.path.join(out, "floor.png"), floor=True)),
        ("models.png", "models" in suites and plot_models(os.path.join(out, "models.json"),
                                                          os.path.join(out, "models.png")))) if ok]
    if _pyplot() is None:
        print("matplotlib is not installed: no plots")
    elif drawn:
        print("plots: " + ", ".join(drawn))
    print(f"\nresults in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

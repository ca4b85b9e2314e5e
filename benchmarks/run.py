"""Every benchmark suite in one command: the op suites, the real-network layer modes and whole
networks before and after atrous.convert.

    python benchmarks/run.py --quick                    # what `make bench` runs: shorter timing, fewer networks
    python benchmarks/run.py                            # every suite at full length
    python benchmarks/run.py --suite models --suite max_pool --threads 1
    python benchmarks/run.py --out benchmarks/results/2026-12-03-mine

Each suite runs as its own process (its own allocator state and threads) and prints its table as
it goes; the run writes, under --out, one markdown file per suite, everything.md (all tables, with
the machine, torch version and commit), models.json (every figure of the whole-network suite) and,
where matplotlib is installed, models.png (the speed-up of each network and configuration).
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
    "depthwise": (["bench_depthwise.py"], ["--rounds", "1", "--min-run-time", "0.1"], {"threads", "layout", "device"}),
    "depthwise_networks": (["bench_depthwise.py", "--networks"],
                           ["--network", "mobilenet_v2", "--network", "efficientnet_b0", "--config", "batch 8",
                            "--rounds", "1"], {"threads", "layout", "device"}),
    "max_unpool": (["bench_max_unpool.py"], ["--rounds", "1", "--min-run-time", "0.1"], {"threads", "layout", "device"}),
    "max_pool": (["bench_max_pool.py"], ["--quick"], {"threads", "layout", "device"}),
    "separable": (["bench_separable.py"], ["--rounds", "1", "--min-run-time", "0.1"], {"threads", "layout"}),
    "separable_networks": (["bench_separable.py", "--networks"], ["--rounds", "1", "--min-run-time", "0.05"],
                           {"threads", "layout"}),
    "models": (["bench_models.py"], ["--quick"], {"threads", "layout"}),
}


def plot_models(json_path, png_path):
    """A bar chart of original / converted per network, configuration and layout; False without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
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
    m = data["machine"]
    fig.suptitle(f"atrous.convert, whole networks: {m['cpu']}, {m['threads']} threads, kernels {m['cpu_capability']}, "
                 f"torch {data['torch']}, {data['commit']}", fontsize=9)
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
    parser.add_argument("--out", help="folder for the results (default: a dated folder under /tmp)")
    args = parser.parse_args()
    suites = args.suite or list(SUITES)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    out = args.out or os.path.join("/tmp", f"atrous-bench-{stamp}")
    os.makedirs(out, exist_ok=True)

    import torch

    header = (f"# atrous benchmarks, {stamp}, commit {commit()}: {cpu_model()}, "
              f"torch {torch.__version__}, {'quick' if args.quick else 'full'} run")
    sections = [header, ""]
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
        md = os.path.join(out, f"{name}.md")
        cmd += ["--markdown", md]
        if name == "models":
            cmd += ["--json", os.path.join(out, "models.json")]
        print(f"\n[{i}/{len(suites)}] {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.time()
        rc = subprocess.run(cmd, cwd=HERE).returncode
        print(f"[{i}/{len(suites)}] {name}: {'done' if rc == 0 else f'FAILED (exit {rc})'} in "
              f"{time.time() - start:.0f} s", flush=True)
        if rc != 0:
            return rc
        with open(md) as f:
            sections += [f"## {name}", "", f.read()]
    with open(os.path.join(out, "everything.md"), "w") as f:
        f.write("\n".join(sections))
    if "models" in suites:
        drawn = plot_models(os.path.join(out, "models.json"), os.path.join(out, "models.png"))
        print("models.png written" if drawn else "matplotlib is not installed: no plot")
    print(f"\nresults in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

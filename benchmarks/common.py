"""Timing helpers shared by the benchmark suites."""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess

import torch
from torch.utils.benchmark import Timer

import atrous


def measure(stmt, env, threads, min_run_time):
    """Median seconds per run of `stmt` (torch.utils.benchmark, `threads` threads). The Timer
    synchronises the GPU around each block of runs, so CUDA work is timed without a
    synchronisation per run."""
    return Timer(stmt, globals=env, num_threads=threads).blocked_autorange(min_run_time=min_run_time).median


def alternate(stmt, envs, rounds, threads, min_run_time):
    """Times each implementation (name -> globals) in turn for `rounds` rounds; returns, per name,
    the median over rounds of each round's median, so that drifts in machine speed hit all alike."""
    times = {name: [] for name in envs}
    for _ in range(rounds):
        for name, env in envs.items():
            times[name].append(measure(stmt, env, threads, min_run_time))
    return {name: statistics.median(v) for name, v in times.items()}


def copy_bandwidth(device):
    """Bytes per second of a large copy on `device` (bytes read plus bytes written)."""
    x = torch.empty(256 * 2**20, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    sec = measure("y.copy_(x)", dict(x=x, y=y), torch.get_num_threads(), 0.5)
    return 2 * x.numel() / sec


def same_size_copy(nbytes, device, rounds, threads, min_run_time):
    """Seconds of a copy that reads and writes `nbytes` in all (nbytes / 2 each way): the memory
    floor of a kernel that must move that many bytes, at this size and in this run."""
    src = torch.empty(max(1, nbytes // 2), dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return alternate("dst.copy_(src)", {"copy": dict(src=src, dst=dst)}, rounds, threads, min_run_time)["copy"]


def geomean(values):
    return math.exp(sum(map(math.log, values)) / len(values))


class Report:
    """Prints lines and keeps them for an optional markdown file, and keeps every figure of the
    tables as records (each under the heading it was printed below) for an optional JSON file."""

    def __init__(self):
        self.lines = []
        self.records = []
        self.heading = ""

    def __call__(self, line=""):
        print(line, flush=True)
        self.lines.append(line)
        if line.lstrip("\n").startswith("#"):
            self.heading = line.lstrip("\n").lstrip("#").strip()

    def record(self, **fields):
        """One row's figures (times in seconds), under the latest heading."""
        self.records.append({"table": self.heading, **fields})

    def table_header(self, columns):
        self("| " + " | ".join(columns) + " |")
        self("|" + "---|" * len(columns))

    def write(self, path):
        if path:
            with open(path, "w") as f:
                f.write("\n".join(self.lines) + "\n")

    def write_json(self, path, threads):
        """The records with the machine, torch and commit they were measured on."""
        if path:
            with open(path, "w") as f:
                json.dump({**machine_info(threads), "records": self.records}, f, indent=1)


def progress(iterable, total=None, desc=None):
    """`iterable` behind a progress bar on stderr (tqdm, where installed and stderr is a terminal),
    so that long suites show how far they are without mixing the bar into their tables."""
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, disable=None, dynamic_ncols=True)


def emit_comparison(emit, rows, bandwidth=None, same_size_copy=False, total=None):
    """Prints the table of torch against ours and its geometric means. `rows` yields (case name,
    layout, results, bytes moved), results as {"forward"/"forward+backward": {"torch"/"ours": s}};
    with the device's copy `bandwidth`, the forward's share of it is printed too; with
    `same_size_copy`, results["copy"] (seconds of a copy of the bytes moved) over our forward's.
    `total`: the number of rows, for the progress bar."""
    extra = (["fwd % of copy bw"] if bandwidth else []) + (["fwd % of same-size copy"] if same_size_copy else [])
    emit.table_header(["case", "layout", "fwd torch ms", "fwd ours ms", "fwd speedup", "fwd+bwd torch ms",
                       "fwd+bwd ours ms", "fwd+bwd speedup"] + extra)
    ratios = {"forward": [], "forward+backward": []}
    for name, layout, res, moved in progress(rows, total, emit.heading):
        f, fb = res["forward"], res["forward+backward"]
        rf, rfb = f["torch"] / f["ours"], fb["torch"] / fb["ours"]
        ratios["forward"].append(rf)
        ratios["forward+backward"].append(rfb)
        row = (f"| {name} | {layout} | {f['torch'] * 1e3:.3f} | {f['ours'] * 1e3:.3f} | {rf:.2f}x | "
               f"{fb['torch'] * 1e3:.3f} | {fb['ours'] * 1e3:.3f} | {rfb:.2f}x |")
        if bandwidth:
            row += f" {100 * moved / f['ours'] / bandwidth:.0f}% |"
        if same_size_copy:
            row += f" {100 * res['copy'] / f['ours']:.0f}% |"
        emit(row)
        emit.record(case=name, layout=layout, bytes_moved=moved, same_size_copy=res.get("copy"),
                    **{"forward": f, "forward+backward": fb})
    emit("")
    emit(f"geometric-mean speedup: forward {geomean(ratios['forward']):.2f}x, forward+backward "
         f"{geomean(ratios['forward+backward']):.2f}x; slower than torch in "
         f"{sum(r < 1 for r in ratios['forward'])} forward and "
         f"{sum(r < 1 for r in ratios['forward+backward'])} forward+backward of {len(ratios['forward'])} cases")


def suite_parser(doc):
    """The options every op suite takes (devices, layouts, timing, threads, CUDA batch, markdown)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], action="append")
    parser.add_argument("--layout", choices=["contiguous", "channels_last"], action="append")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--cuda-batch-scale", type=int, default=8)
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--json", help="also write every figure, with the machine it ran on, to this file")
    return parser


def suite_targets(args):
    """The devices (all present by default) and layouts (both by default) a suite runs."""
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    return devices, args.layout or ["contiguous", "channels_last"]


def cpu_name(threads):
    """The CPU as the tables name it: threads, and the atrous CPU capability in use."""
    return f"CPU, {threads} threads, atrous kernels {atrous.build_info()['cpu_capability']}"


def device_header(emit, device, args, title):
    """Prints a table's heading for `device` and returns its copy bandwidth (CUDA) or None."""
    dev_name = torch.cuda.get_device_name() if device == "cuda" else cpu_name(args.threads)
    bandwidth = copy_bandwidth(device) if device == "cuda" else None
    emit(f"\n### {title.format(device=f'{device} ({dev_name})')}")
    if bandwidth:
        emit(f"copy bandwidth: {bandwidth / 1e9:.0f} GB/s")
    emit("")
    return bandwidth


def commit():
    """The repository's short commit hash, or "unknown" outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_flags():
    """The CPU's feature flags (/proc/cpuinfo), or an empty list where it has none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def machine_info(threads):
    """What a result was measured on: the machine, its CPU flags, the kernels in use, torch, the
    atrous commit and the date."""
    info = atrous.build_info()
    machine = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "threads": threads, "platform": platform.platform(),
               "cpu_capability": info["cpu_capability"]}
    if torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name()
    return {"machine": machine, "torch": torch.__version__, "atrous": atrous.__version__, "commit": commit(),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), or what platform knows of it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

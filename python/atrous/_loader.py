"""Loads the compiled library (atrous._C) and reads what it was built with."""

import functools
import importlib

import torch

_REBUILD = (
    "Rebuild it against the torch you have: `pip install --no-build-isolation -e .` in the "
    "atrous checkout (or `make build`)."
)


def load_library():
    try:
        importlib.import_module("atrous._C")
    except ImportError as e:
        raise ImportError(
            f"atrous: the compiled library atrous._C could not be loaded ({e}). It is missing, or "
            f"was built against another torch than the {torch.__version__} installed now. "
            + _REBUILD
        ) from e
    try:
        info = build_info()
    except RuntimeError as e:  # ATROUS_CPU_CAPABILITY asks for a capability that cannot be used
        raise ImportError(str(e).splitlines()[0]) from e
    built = info["torch_version"]
    have = torch.__version__.split("+")[0]
    if built != have:
        raise ImportError(
            f"atrous: the compiled library was built against torch {built}, but torch {have} is "
            "installed. " + _REBUILD
        )


@functools.lru_cache(maxsize=None)
def _raw_build_info():
    fields = {}
    for line in torch.ops.atrous._build_info().splitlines():
        key, _, value = line.partition("=")
        fields[key] = value
    return fields


def build_info():
    """What the compiled library was built with: a dict with `version`, `torch_version` (the torch
    it was built against), `cuda` (whether CUDA kernels were compiled), `cuda_version`,
    `cuda_arch_list`, `compiler`, and of the CPU kernels: `cpu_capabilities` (the instruction sets
    they were compiled for, lowest first), `cpu_capabilities_supported` (those of them this CPU
    runs), `cpu_capability` (the one in use: the best, or what ATROUS_CPU_CAPABILITY asks for) and
    `cpu_arch` (the -march of a build for one target, ATROUS_CPU_ARCH; None for a portable one),
    and `cpu_vendor`, who made this CPU ("intel", "amd" or "other"; some plans follow it)."""
    f = _raw_build_info()
    cuda_version = f.get("cuda_version", "")
    if cuda_version and cuda_version.isdigit():
        cuda_version = f"{cuda_version[:-1]}.{cuda_version[-1]}"
    return {
        "version": f["version"],
        "torch_version": f["torch"],
        "cuda": f.get("cuda") == "1",
        "cuda_version": cuda_version or None,
        "cuda_arch_list": [a for a in f.get("cuda_arch_list", "").replace(" ", ";").split(";") if a],
        "compiler": f.get("compiler", "unknown"),
        "cpu_capabilities": [c for c in f.get("cpu_capabilities", "").split(",") if c],
        "cpu_capabilities_supported": [c for c in f.get("cpu_capabilities_supported", "").split(",") if c],
        "cpu_capability": f.get("cpu_capability"),
        "cpu_arch": f.get("cpu_arch") or None,
        "cpu_vendor": f.get("cpu_vendor", "other"),
    }

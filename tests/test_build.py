"""The build: build_info, and the CMake build of csrc/ for C++ (libtorch) users."""

import glob
import os
import platform
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

import atrous

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cuda_toolkit():
    home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    nvcc = os.path.join(home, "bin", "nvcc")
    return home if os.path.exists(nvcc) else None


def test_build_info():
    info = atrous.build_info()
    assert info["version"] == atrous.__version__
    assert info["torch_version"] == torch.__version__.split("+")[0]
    assert isinstance(info["cuda"], bool) and info["compiler"]
    assert info["cpu_vendor"] in ("intel", "amd", "other")
    if info["cpu_vendor"] != "other":
        vendor = {"intel": "GenuineIntel", "amd": "AuthenticAMD"}[info["cpu_vendor"]]
        if os.path.exists("/proc/cpuinfo"):
            with open("/proc/cpuinfo") as f:
                assert vendor in f.read()
    if info["cuda"]:
        assert info["cuda_arch_list"] and info["cuda_version"]
        assert torch.ops.atrous.depthwise_conv2d.default.has_kernel_for_dispatch_key("CUDA")
    if os.environ.get("ATROUS_REQUIRE_CUDA_BUILD") == "1":
        # CI: a CUDA toolkit and a CUDA build of torch are present, so the kernels must be there.
        assert info["cuda"], "CUDA kernels could have been compiled but were not"


def _cmake_args(build_dir):
    args = ["cmake", "-S", ROOT, "-B", build_dir, f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}"]
    home = _cuda_toolkit()
    if home and torch.version.cuda:
        site = os.path.dirname(os.path.dirname(torch.__file__))
        nvrtc = sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib", "libnvrtc.so*")))
        args += [f"-DCUDA_TOOLKIT_ROOT_DIR={home}", f"-DCMAKE_CUDA_COMPILER={home}/bin/nvcc",
                 f"-DTORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST') or '9.0'}"]
        if nvrtc:
            args.append(f"-DCUDA_nvrtc_LIBRARY={nvrtc[0]}")
    else:
        args.append("-DATROUS_CPU_ONLY=ON")
    return args


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
@pytest.mark.parametrize("variant", ["portable", "native"])
def test_cmake_build_loads_and_computes(tmp_path, variant):
    # portable: the default build (CUDA kernels where they can be built; on x86-64 the CPU kernels
    # for avx2 and avx512). native: ATROUS_CPU_ARCH=native, one CPU capability, CPU kernels only.
    build = str(tmp_path / "build")
    jobs = os.environ.get("MAX_JOBS", "2")
    configure = _cmake_args(build)
    if variant == "native":
        configure += ["-DATROUS_CPU_ONLY=ON", "-DATROUS_CPU_ARCH=native"]
    for cmd in (configure, ["cmake", "--build", build, "-j", jobs]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    lib = os.path.join(build, "libatrous.so")
    assert os.path.exists(lib)
    # A fresh interpreter that never imports the Python package: the library alone registers the ops.
    script = textwrap.dedent(f"""
        import torch, torch.nn.functional as F
        torch.ops.load_library({lib!r})
        x = torch.randn(2, 3, 9, 10, dtype=torch.float64)
        w = torch.randn(6, 1, 3, 3, dtype=torch.float64)
        y = torch.ops.atrous.depthwise_conv2d(x, w, None, [1, 2], [1, 1, 1, 1], [2, 1])
        torch.testing.assert_close(y, F.conv2d(x, w, None, (1, 2), 1, (2, 1), groups=3))
        print(torch.ops.atrous._build_info())
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
    want_cuda = variant == "portable" and bool(_cuda_toolkit() and torch.version.cuda)
    assert (f"cuda={int(want_cuda)}") in r.stdout
    fields = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    if variant == "native":
        assert fields["cpu_capabilities"] == "default" and fields["cpu_arch"] == "native"
    elif platform.machine().lower() in ("x86_64", "amd64"):
        assert fields["cpu_capabilities"] == "avx2,avx512" and fields["cpu_arch"] == ""
    assert fields["cpu_capability"] in fields["cpu_capabilities_supported"].split(",")

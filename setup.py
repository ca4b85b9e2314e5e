"""Build of the atrous extension: CPU kernels always, CUDA kernels whenever a CUDA toolkit and a
CUDA build of torch are present (whether or not a GPU is visible).

Environment variables:
  ATROUS_CPU_ONLY=1       build the CPU kernels only.
  FORCE_CUDA=1            make a missing CUDA toolkit (or a CPU-only torch) an error.
  CUDA_HOME               the CUDA toolkit; defaults to /usr/local/cuda, else nvcc's real location.
  TORCH_CUDA_ARCH_LIST    GPU architectures, e.g. "9.0" or "8.0;9.0+PTX"; defaults to the visible
                          GPUs, or with none visible to the architectures this torch was built for.
  ATROUS_CPU_ARCH         unset (the default): a portable build. On x86-64 the CPU kernels are
                          compiled twice, for "avx2" (AVX2, FMA, F16C) and "avx512", and the best
                          one this CPU runs is chosen at run time (csrc/cpu/capability.h;
                          ATROUS_CPU_CAPABILITY forces a lower one); other targets have one.
                          Set to a -march value (e.g. "native") to build everything for that
                          target only, as one "default" capability: for a build used on the
                          building machine alone.
  MAX_JOBS                parallel compile jobs.
"""

import os
import platform
import shutil
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
VERSION = "0.1.0"


def _default_cuda_home():
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    if os.path.exists("/usr/local/cuda/bin/nvcc"):
        os.environ["CUDA_HOME"] = "/usr/local/cuda"
        return
    nvcc = shutil.which("nvcc")
    if nvcc:
        os.environ["CUDA_HOME"] = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))


# torch.utils.cpp_extension reads CUDA_HOME when it is imported.
_default_cuda_home()

import torch  # noqa: E402
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension  # noqa: E402


def _flag(name):
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


def _want_cuda():
    if _flag("ATROUS_CPU_ONLY"):
        if _flag("FORCE_CUDA"):
            sys.exit("atrous: FORCE_CUDA=1 and ATROUS_CPU_ONLY=1 contradict each other")
        return False
    reasons = []
    if torch.version.cuda is None:
        reasons.append(f"torch {torch.__version__} is not a CUDA build")
    if CUDA_HOME is None or not os.path.exists(os.path.join(CUDA_HOME, "bin", "nvcc")):
        reasons.append(f"no nvcc under CUDA_HOME={CUDA_HOME!r}")
    if reasons:
        if _flag("FORCE_CUDA"):
            sys.exit("atrous: FORCE_CUDA=1 but CUDA kernels cannot be built: " + "; ".join(reasons))
        print("atrous: building CPU kernels only (" + "; ".join(reasons) + ")", file=sys.stderr)
        return False
    return True


def _arch_list():
    """TORCH_CUDA_ARCH_LIST as torch's build will use it; set when it would otherwise fall back to
    guessing without a GPU."""
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if archs and archs != "native":
        return archs
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        archs = ";".join(f"{a}.{b}" for a, b in caps)
    else:
        sms = [a.split("_")[1] for a in torch.cuda.get_arch_list() if a.startswith("sm_")]
        archs = ";".join(f"{s[:-1]}.{s[-1]}" for s in sms) + "+PTX"
    os.environ["TORCH_CUDA_ARCH_LIST"] = archs
    return archs


def _sources(*dirs, exts=(".cpp",)):
    """The source files under each of `dirs`, subfolders included, in a fixed order."""
    out = []
    for d in dirs:
        for folder, subdirs, names in os.walk(os.path.join(ROOT, d)):
            subdirs.sort()
            rel = os.path.relpath(folder, ROOT)
            out += [os.path.join(rel, name) for name in sorted(names) if name.endswith(exts)]
    return out


# The CPU capabilities of a portable x86-64 build and their compiler flags (csrc/cpu/capability.h
# checks the same features at run time before it picks one).
_AVX2 = ["-mavx2", "-mfma", "-mf16c"]
_X86_CAPABILITIES = [
    ("avx2", _AVX2),
    ("avx512", _AVX2 + ["-mavx512f", "-mavx512cd", "-mavx512bw", "-mavx512dq", "-mavx512vl"]),
]


def _cpu_sources():
    """(host files, kernel files) of csrc/cpu: the kernel files, compiled once per capability, are
    every .cpp under csrc/cpu/<op>/ but the host's ops.cpp, plan.cpp and *_host.cpp."""
    host, kernels = [], []
    for path in _sources("csrc/cpu"):
        parts = os.path.relpath(path, "csrc/cpu").split(os.sep)
        is_host = len(parts) == 1 or parts[-1] in ("ops.cpp", "plan.cpp") or parts[-1].endswith("_host.cpp")
        (host if is_host else kernels).append(path)
    return host, kernels


def _cpu_builds():
    """([(capability, extra flags)] to compile the kernel files for, flags for every file, macros)."""
    march = os.environ.get("ATROUS_CPU_ARCH", "").strip()
    if march and march != "none":
        return [("base", [])], [f"-march={march}"], [("ATROUS_CPU_ARCH", f'"{march}"')]
    if platform.machine().lower() in ("x86_64", "amd64"):
        return _X86_CAPABILITIES, [], [("ATROUS_CPU_MULTI_ISA", "1")]
    return [("base", [])], [], []


class _BuildExt(BuildExtension):
    """torch's BuildExtension, which also compiles the CPU kernel files once per capability (each
    with its flags and ATROUS_CPU_CAPABILITY) and links those objects into the extension."""

    def build_extension(self, ext):
        objects = []
        for name, flags in ext.atrous_kernel_builds:
            # -Wno-psabi: 64-byte vectors passed between inlined helpers of one file, never
            # across a capability's boundary (the tables hold plain function pointers).
            cxx = list(ext.extra_compile_args["cxx"]) + flags + ["-Wno-psabi"]
            objects += self.compiler.compile(
                ext.atrous_kernel_sources, output_dir=os.path.join(self.build_temp, "cpu-" + name),
                macros=ext.define_macros + [("ATROUS_CPU_CAPABILITY", name)],
                include_dirs=ext.include_dirs, debug=self.debug,
                extra_postargs={"cxx": cxx, "nvcc": []}, depends=ext.depends)
        ext.extra_objects = [o for o in ext.extra_objects if o not in objects] + objects
        super().build_extension(ext)


def _extension():
    with_cuda = _want_cuda()
    # No -std flag: torch's BuildExtension adds the C++ standard this torch was built with (C++20
    # for torch 2.14, C++17 before), and a mismatch can break the ops at load time.
    # -fopenmp: at::parallel_for runs in parallel only in code compiled with OpenMP (torch's CPU
    # backend); libgomp resolves to the copy torch has already loaded.
    cxx = ["-O3", "-fno-math-errno", "-fopenmp"]
    link = ["-fopenmp"]
    builds, all_flags, cpu_macros = _cpu_builds()
    cxx += all_flags
    macros = [("ATROUS_VERSION", f'"{VERSION}"')] + cpu_macros
    host, kernels = _cpu_sources()
    sources = ["csrc/registration.cpp", "csrc/autograd.cpp", "csrc/python_module.cpp"] + host
    if not with_cuda:
        ext = CppExtension("atrous._C", sources, define_macros=macros,
                           extra_compile_args={"cxx": cxx}, extra_link_args=link,
                           include_dirs=[os.path.join(ROOT, "csrc")])
        ext.atrous_kernel_builds, ext.atrous_kernel_sources = builds, kernels
        return ext
    archs = _arch_list()
    cuda_version = torch.version.cuda.replace(".", "")
    macros += [("ATROUS_WITH_CUDA", None), ("ATROUS_CUDA_ARCH_LIST", f'"{archs}"'),
               ("ATROUS_CUDA_VERSION", cuda_version)]
    sources += _sources("csrc/cuda", exts=(".cpp", ".cu"))
    nvcc = ["-O3", "-lineinfo", "--expt-relaxed-constexpr"]
    ext = CUDAExtension("atrous._C", sources, define_macros=macros,
                        extra_compile_args={"cxx": cxx, "nvcc": nvcc}, extra_link_args=link,
                        include_dirs=[os.path.join(ROOT, "csrc")])
    ext.atrous_kernel_builds, ext.atrous_kernel_sources = builds, kernels
    return ext


setup(
    name="atrous",
    version=VERSION,
    description="Fast dilated depthwise, fused separable conv2d and max-unpool2d kernels for PyTorch",
    package_dir={"": "python"},
    packages=find_packages("python"),
    ext_modules=[_extension()],
    cmdclass={"build_ext": _BuildExt.with_options(use_ninja=True)},
    python_requires=">=3.9",
    install_requires=["torch"],
    zip_safe=False,
)

"""CPU capabilities (csrc/cpu/capability.h): which instruction sets the kernels were built for, the
choice among them at import (ATROUS_CPU_CAPABILITY), and that no code outside a capability's own
kernels uses instructions beyond the portable baseline."""

import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

import atrous

X86 = platform.machine().lower() in ("x86_64", "amd64")
INFO = atrous.build_info()
PORTABLE_X86 = X86 and INFO["cpu_arch"] is None


def test_build_info_reports_the_capabilities():
    built, supported, active = INFO["cpu_capabilities"], INFO["cpu_capabilities_supported"], INFO["cpu_capability"]
    assert set(supported) <= set(built) and active in supported
    assert built == (["avx2", "avx512"] if PORTABLE_X86 else ["default"])
    requested = os.environ.get("ATROUS_CPU_CAPABILITY")
    assert active == (requested or supported[-1])


def choose(requested, supported):
    return torch.ops.atrous._choose_cpu_capability(requested, supported)


@pytest.mark.skipif(not PORTABLE_X86, reason="a portable x86-64 build has avx2 and avx512")
def test_choice_among_what_the_cpu_supports():
    assert choose("", ["avx2", "avx512"]) == "avx512"
    assert choose("", ["avx2"]) == "avx2"
    assert choose("avx2", ["avx2", "avx512"]) == "avx2"
    assert choose("avx512", ["avx2", "avx512"]) == "avx512"
    with pytest.raises(RuntimeError, match=r"ATROUS_CPU_CAPABILITY='avx512' is not supported by this CPU; it "
                                           r"supports avx2"):
        choose("avx512", ["avx2"])
    with pytest.raises(RuntimeError, match=r"ATROUS_CPU_CAPABILITY='default' is not in this build of atrous, "
                                           r"which has avx2, avx512"):
        choose("default", ["avx2", "avx512"])
    with pytest.raises(RuntimeError, match=r"ATROUS_CPU_CAPABILITY='avx9' is not a CPU capability; use one of "
                                           r"default, avx2, avx512"):
        choose("avx9", ["avx2", "avx512"])
    # A CPU without AVX2 runs none of them: a clear error, not an illegal instruction.
    with pytest.raises(RuntimeError, match=r"need AVX2, FMA and F16C, which this CPU lacks"):
        choose("", [])


@pytest.mark.skipif(PORTABLE_X86, reason="a build with only the default capability")
def test_capability_not_built_is_refused():
    assert choose("", ["default"]) == "default"
    with pytest.raises(RuntimeError, match=r"ATROUS_CPU_CAPABILITY='avx2' is not in this build of atrous"):
        choose("avx2", ["default"])


# A fresh interpreter with ATROUS_CPU_CAPABILITY set: what it reports, and the three ops (forward
# and backward, both layouts, float32 and bfloat16) against torch's.
_CHECK = textwrap.dedent("""
    import torch, torch.nn.functional as F, atrous
    print(atrous.build_info()["cpu_capability"])
    torch.manual_seed(0)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        for fmt in (torch.contiguous_format, torch.channels_last):
            for c, h, k, s in ((40, 28, 3, 1), (24, 20, 5, 2), (8, 9, 7, 1)):
                x = torch.randn(2, c, h, h, dtype=dtype).to(memory_format=fmt).requires_grad_()
                w = torch.randn(c, 1, k, k, dtype=dtype, requires_grad=True)
                args = dict(stride=s, padding=k // 2)
                y = atrous.depthwise_conv2d(x, w, **args)
                ref = F.conv2d(x.float(), w.float(), groups=c, **args)
                torch.testing.assert_close(y.float(), ref, rtol=tol, atol=tol * k * k)
                g = torch.randn_like(y)
                got = torch.autograd.grad(y, (x, w), g)
                want = torch.autograd.grad(ref, (x, w), g.float())
                for a, b in zip(got, want):
                    torch.testing.assert_close(a.float(), b.float(), rtol=tol, atol=tol * 50 * h)
                v, i = atrous.max_pool2d(x, 3, 2, 1, return_indices=True)
                rv, ri = F.max_pool2d(x, 3, 2, 1, return_indices=True)
                assert torch.equal(v, rv) and torch.equal(i, ri)
                (gx,) = torch.autograd.grad(v, x, torch.ones_like(v))
                (rgx,) = torch.autograd.grad(rv, x, torch.ones_like(rv))
                assert torch.equal(gx, rgx)
                u = atrous.max_unpool2d(v.detach(), i, 3, 2, 1, output_size=x.shape[-2:])
                assert torch.equal(u, F.max_unpool2d(v.detach(), i, 3, 2, 1, output_size=x.shape[-2:]))
    print("ok")
""")


def _run(capability, script):
    env = dict(os.environ, ATROUS_CPU_CAPABILITY=capability)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("capability", INFO["cpu_capabilities_supported"])
def test_each_supported_capability_runs_and_matches_torch(capability):
    r = _run(capability, _CHECK)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == [capability, "ok"]


@pytest.mark.parametrize("bad", ["avx9", "AVX2", " "])
def test_unknown_capability_is_an_error_at_import(bad):
    r = _run(bad, "import atrous")
    assert r.returncode != 0
    assert "ImportError" in r.stderr
    assert f"ATROUS_CPU_CAPABILITY='{bad}' is not a CPU capability; use one of default" in r.stderr


# The instructions of the library's code, by capability. Functions of atrous::cpu::avx512 may use
# anything; those of atrous::cpu::avx2 no AVX-512 (no EVEX encoding, no mask registers); every other
# function the linker can share between objects (global and weak symbols: the host code, and any
# inline function of torch or the standard library, whichever object's copy the linker kept) no VEX
# or EVEX instruction and none of SSE3-SSE4.2, what any x86-64 CPU runs: so that no host path, nor
# import's clear error on a CPU without AVX2, meets a kernel's instruction set. Local symbols
# (a kernel file's own clones, such as .constprop ones) are called from their own file only.
_PREFIXES = {0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3}
_BEYOND_SSE2 = re.compile(
    r"^(pshufb|palignr|pabs[bwd]|phadd|phsub|pmaddubsw|pmulhrsw|psign|pblendvb|pblendw|blendv?p[sd]|ptest|"
    r"round[ps][sd]|pmulld|pmuldq|pmin(sb|sd|ud|uw)|pmax(sb|sd|ud|uw)|pmov[sz]x|packusdw|pcmp[eg][qt]q|"
    r"pcmp[ei]str[im]|insertps|extractps|pinsr[bdq]|pextr[bdq]|dpp[sd]|mpsadbw|phminposuw|movntdqa|"
    r"popcnt|lzcnt|crc32|movbe|haddp|hsubp|addsubp|movddup|movs[hl]dup|lddqu)$")


def _shared_symbols(lib):
    out = subprocess.run(["nm", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
    return {parts[2] for parts in (line.split() for line in out.splitlines())
            if len(parts) == 3 and parts[1] in "TWVi"}


def _violations(lib):
    shared = _shared_symbols(lib)
    out = subprocess.run(["objdump", "-d", "--no-addresses", "-w", lib], capture_output=True,
                         text=True, check=True).stdout
    bad = {}
    seen = {"avx2 vex": 0, "avx512 evex": 0}  # that the listing was read: the kernels' own code
    func = None
    for line in out.splitlines():
        if line.startswith("<") and line.endswith(">:"):
            name = line[1:-2]
            func = (name, "avx512" if "6atrous3cpu6avx512" in name else
                    "avx2" if "6atrous3cpu4avx2" in name else "base" if name in shared else None)
            continue
        if func is None or func[1] is None or "\t" not in line:
            continue
        parts = line.strip().split("\t")
        if len(parts) < 2:
            continue
        try:
            raw = [int(b, 16) for b in parts[0].split()]
        except ValueError:
            continue
        op = parts[1].split()[0] if parts[1].split() else ""
        i = 0
        while i < len(raw) and raw[i] in _PREFIXES:
            i += 1
        if i < len(raw) and 0x40 <= raw[i] <= 0x4F:  # REX
            i += 1
        first = raw[i] if i < len(raw) else None
        evex, vex = first == 0x62, first in (0xC4, 0xC5)
        if func[1] == "avx512":
            seen["avx512 evex"] += evex
            continue
        if func[1] == "avx2":
            seen["avx2 vex"] += vex
            wrong = evex or (vex and op.startswith("k"))
        else:
            wrong = evex or vex or bool(_BEYOND_SSE2.match(op))
        if wrong and func[0] not in bad:
            bad[func[0]] = f"[{func[1]}] {parts[1].strip()}"
    return bad, seen


def _demangled(name):
    r = subprocess.run(["c++filt", name], capture_output=True, text=True)
    return r.stdout.strip() or name


@pytest.mark.slow
@pytest.mark.skipif(not PORTABLE_X86, reason="checks a portable x86-64 build")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_no_instruction_outside_its_capability():
    lib = atrous._C.__file__
    bad, seen = _violations(lib)
    assert seen["avx2 vex"] > 1000 and seen["avx512 evex"] > 1000, seen
    listing = "\n".join(f"  {_demangled(name)}: {insn}" for name, insn in sorted(bad.items())[:40])
    assert not bad, f"{len(bad)} functions use instructions beyond their capability:\n{listing}"


# simd.h's half <-> float conversion for targets without a conversion instruction (the portable
# "default" capability of non-x86 builds, which this machine does not build), compiled here for
# plain x86-64 and checked against c10's scalar conversion: every half, and floats across the
# whole range (every 61st bit pattern, and the halfway cases of rounding).
_HALF_CHECK = r"""
#include <cstdio>
#include <cstring>
#include "cpu/simd.h"
using namespace atrous::cpu;
int main() {
  using C = Cast<c10::Half>;
  long bad = 0;
  for (uint32_t h0 = 0; h0 < 65536; h0 += 16) {
    uint16_t h[16];
    for (int i = 0; i < 16; ++i) h[i] = uint16_t(h0 + i);
    const auto v = C::load(reinterpret_cast<const c10::Half*>(h));
    for (int i = 0; i < 16; ++i) {
      const float want = c10::detail::fp16_ieee_to_fp32_value(h[i]);
      uint32_t a, b;
      const float got = v[i];
      std::memcpy(&a, &got, 4);
      std::memcpy(&b, &want, 4);
      bad += a != b;
    }
  }
  auto check = [&](const uint32_t* bits) {
    float f[16];
    std::memcpy(f, bits, sizeof(f));
    C::vec v;
    std::memcpy(&v, f, sizeof(v));
    uint16_t out[16];
    C::store(reinterpret_cast<c10::Half*>(out), v);
    for (int i = 0; i < 16; ++i) bad += out[i] != c10::detail::fp16_ieee_from_fp32_value(f[i]);
  };
  uint32_t bits[16];
  for (uint64_t x = 0; x < (uint64_t(1) << 32); x += 16 * 61) {
    for (int i = 0; i < 16; ++i) bits[i] = uint32_t(x + 61 * i);
    check(bits);
  }
  for (uint32_t h = 0; h < 0x7C00; h += 16) {  // halfway between neighbouring halves, both signs
    for (int i = 0; i < 16; ++i) {
      const float lo = c10::detail::fp16_ieee_to_fp32_value(uint16_t(h + i));
      const float hi = c10::detail::fp16_ieee_to_fp32_value(uint16_t(h + i + 1));
      const float mid = (i % 2 ? -1.0f : 1.0f) * (lo + (hi - lo) / 2);
      std::memcpy(&bits[i], &mid, 4);
    }
    check(bits);
  }
  std::printf("%ld\n", bad);
  return bad != 0;
}
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler")
def test_portable_half_conversion_matches_c10(tmp_path):
    src = tmp_path / "half_check.cpp"
    src.write_text(_HALF_CHECK)
    exe = tmp_path / "half_check"
    inc = os.path.join(os.path.dirname(torch.__file__), "include")
    csrc = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc")
    cmd = ["c++", "-std=c++20", "-O2", "-Wno-psabi", "-DATROUS_CPU_CAPABILITY=base", f"-I{csrc}",
           f"-I{inc}", str(src), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "0", r.stdout + r.stderr

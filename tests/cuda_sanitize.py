"""Runs every CUDA kernel path of atrous once, on small shapes, for compute-sanitizer:

    compute-sanitizer --tool memcheck --kernel-name kns=atrous python tests/cuda_sanitize.py

(PYTORCH_NO_CUDA_MEMORY_CACHING=1 lets memcheck see each allocation's true bounds.) Each result is
also compared with a float64 CPU reference, so a run under the sanitizer checks values too. Exits
non-zero on a wrong value; the sanitizer's own exit code reports what it found.
"""

import sys

import torch
import torch.nn.functional as F
from helpers import latest_wins_reference

import atrous

failures = []


def check(name, got, ref, tol):
    got = got.detach().double().cpu()
    ref = ref.detach().double().cpu()
    err = (got - ref).abs().max().item() if ref.numel() else 0.0
    scale = max(ref.abs().max().item(), 1.0) if ref.numel() else 1.0
    ok = err <= tol * scale and not torch.isnan(got).any()
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max abs err {err:.3g}", flush=True)
    if not ok:
        failures.append(name)


def depthwise_case(dtype, layout, n, c, h, w, k, s, d, m, bias=True):
    g = torch.Generator().manual_seed(k * 100 + s * 10 + d)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    wt = torch.randn(c * m, 1, k, k, generator=g, dtype=torch.float64) / k
    b = torch.randn(c * m, generator=g, dtype=torch.float64) if bias else None
    p = k // 2 * d
    xd = x.to("cuda", dtype).contiguous(memory_format=layout).requires_grad_()
    wd = wt.to("cuda", dtype).requires_grad_()
    bd = b.to("cuda", dtype).requires_grad_() if bias else None
    y = atrous.depthwise_conv2d(xd, wd, bd, s, p, d)
    go = torch.randn(y.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad(y, [t for t in (xd, wd, bd) if t is not None],
                                go.to("cuda", dtype).contiguous(memory_format=layout))
    # The reference sees the same rounded inputs.
    xr, wr = xd.detach().double().cpu().requires_grad_(), wd.detach().double().cpu().requires_grad_()
    br = bd.detach().double().cpu().requires_grad_() if bias else None
    yr = F.conv2d(xr, wr, br, s, p, d, groups=c)
    refs = torch.autograd.grad(yr, [t for t in (xr, wr, br) if t is not None], go.to(dtype).double())
    tol = {torch.float32: 1e-4, torch.float64: 1e-10}.get(dtype, 3e-2)
    name = f"depthwise {dtype} {'NHWC' if layout == torch.channels_last else 'NCHW'} k{k} s{s} d{d} m{m}"
    check(name + " forward", y, yr, tol)
    for what, a, r in zip(("grad_input", "grad_weight", "grad_bias"), grads, refs):
        check(f"{name} {what}", a, r, tol * (10 if what != "grad_input" else 1) * max(1, n * h * w // 256))


def unpool_cases():
    g = torch.Generator().manual_seed(1)
    for layout in (torch.contiguous_format, torch.channels_last):
        tag = "NHWC" if layout == torch.channels_last else "NCHW"
        for k, s, p in ((2, 2, 0), (3, 2, 1), (3, 3, 0)):
            x = torch.randn(2, 6, 13, 17, generator=g).contiguous(memory_format=layout)
            vals, idx = F.max_pool2d(x, k, s, p, return_indices=True)
            size = x.shape[-2:]
            vd, id_ = vals.cuda().requires_grad_(), idx.cuda()
            out = atrous.max_unpool2d(vd, id_, k, s, p, size)
            ref = F.max_unpool2d(vals, idx, k, s, p, size)
            check(f"unpool {tag} k{k} s{s} p{p} forward", out, ref, 0)
            go = torch.randn(out.shape, generator=g)
            check(f"unpool {tag} k{k} s{s} p{p} backward", torch.autograd.grad(out, vd, go.cuda())[0],
                  torch.gather(go.flatten(2), 2, idx.flatten(2)).view_as(vals), 0)
            out = atrous.max_unpool2d(vd.detach(), id_, k, s, p, size, validate_indices=False)
            check(f"unpool {tag} k{k} s{s} p{p} forward unvalidated", out, ref, 0)
        # In range but outside its window: the gather pass falls back to the scatter.
        vals = torch.randn(2, 3, 4, 4, generator=g).contiguous(memory_format=layout)
        idx = torch.randint(0, 64, (2, 3, 4, 4), generator=g).contiguous(memory_format=layout)
        ref = latest_wins_reference(vals, idx, 8, 8)
        for validate in (True, False):
            out = atrous.max_unpool2d(vals.cuda(), idx.cuda(), 2, 2, 0, (8, 8), validate_indices=validate)
            # Duplicates: the latest input in its plane's row-major order wins.
            check(f"unpool {tag} out-of-window fallback validate={validate}", out, ref, 0)
        bad = idx.clone()
        bad[1, 2, 3, 0] = 64
        try:
            atrous.max_unpool2d(vals.cuda(), bad.cuda(), 2, 2, 0, (8, 8))
            failures.append(f"unpool {tag} invalid index not reported")
        except IndexError as e:
            print(f"ok   unpool {tag} invalid index reported: {str(e)[:80]}")
        out = atrous.max_unpool2d(vals.cuda(), bad.cuda(), 2, 2, 0, (8, 8), validate_indices=False)
        torch.cuda.synchronize()
        print(f"ok   unpool {tag} invalid index skipped unvalidated", flush=True)


def pool_cases():
    """One small case of each max-pool kernel (forward with and without indices, backward), both
    layouts, against the CPU."""
    g = torch.Generator().manual_seed(2)
    for layout in (torch.contiguous_format, torch.channels_last):
        tag = "NHWC" if layout == torch.channels_last else "NCHW"
        for k, s, p, d, ceil in ((2, 2, 0, 1, False), (3, 2, 1, 1, True), ((3, 2), (1, 2), (1, 0), (2, 1), False)):
            for dtype in (torch.float32, torch.bfloat16):
                x = torch.randn(2, 6, 13, 17, generator=g).to(dtype).contiguous(memory_format=layout)
                ref_v, ref_i = atrous.max_pool2d(x, k, s, p, d, ceil, True)
                xd = x.cuda().requires_grad_()
                v, i = atrous.max_pool2d(xd, k, s, p, d, ceil, True)
                check(f"max_pool {tag} {dtype} k{k} s{s} p{p} d{d} values", v, ref_v, 0)
                check(f"max_pool {tag} {dtype} k{k} s{s} p{p} d{d} indices", i, ref_i, 0)
                check(f"max_pool {tag} {dtype} k{k} s{s} p{p} d{d} no indices",
                      atrous.max_pool2d(xd.detach(), k, s, p, d, ceil), ref_v, 0)
                go = torch.randn(ref_v.shape, generator=g).to(dtype)
                xc = x.clone().requires_grad_()
                ref_g = torch.autograd.grad(atrous.max_pool2d(xc, k, s, p, d, ceil), xc, go)[0]
                check(f"max_pool {tag} {dtype} k{k} s{s} p{p} d{d} backward",
                      torch.autograd.grad(v, xd, go.cuda())[0], ref_g, 0)


def main():
    torch.backends.cudnn.enabled = False
    cl, cf = torch.channels_last, torch.contiguous_format
    for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        for layout in (cf, cl):
            depthwise_case(dtype, layout, 2, 5, 19, 23, 3, 1, 1, 1)
            depthwise_case(dtype, layout, 2, 16, 19, 23, 3, 1, 1, 1)  # NHWC: the vector kernel
            depthwise_case(dtype, layout, 2, 4, 20, 17, 5, 2, 1, 2, bias=False)
    for layout in (cf, cl):
        depthwise_case(torch.float32, layout, 1, 3, 40, 45, 3, 1, 6, 1)
        depthwise_case(torch.float32, layout, 1, 2, 40, 40, 31, 1, 1, 1)
        depthwise_case(torch.float32, layout, 1, 2, 70, 70, 31, 1, 3, 1)  # NCHW: the direct kernel
        depthwise_case(torch.float32, layout, 2, 8, 30, 33, 11, 1, 1, 1)
        depthwise_case(torch.float32, layout, 1, 4, 80, 80, 35, 1, 1, 1)  # wider than 32: per-tap grad_weight
        depthwise_case(torch.float32, layout, 4, 64, 40, 40, 7, 1, 1, 1)
        depthwise_case(torch.float32, layout, 3, 6, 9, 70, 7, 3, 2, 3)
        depthwise_case(torch.float32, layout, 2, 33, 130, 7, 1, 1, 1, 1)
    unpool_cases()
    pool_cases()
    torch.cuda.synchronize()
    print(f"{len(failures)} failures" + (": " + ", ".join(failures) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

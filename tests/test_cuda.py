"""CUDA-only checks (skipped without a GPU): CPU against CUDA, streams and devices, CUDA graphs,
memory. The device-parametrised tests in the other files run everything else on CUDA too."""

import gc

import pytest
import torch
import torch.nn.functional as F

import atrous

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DTYPE_TOL = {torch.float32: 1e-4, torch.float64: 1e-10, torch.float16: 2e-2, torch.bfloat16: 1e-1}


@pytest.mark.parametrize("dtype", list(DTYPE_TOL))
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("k,s,d,m", [(3, 1, 1, 1), (5, 2, 1, 2), (3, 1, 6, 1), (31, 1, 1, 1), (7, 3, 2, 3)])
def test_depthwise_cpu_equals_cuda(dtype, layout, k, s, d, m):
    g = torch.Generator().manual_seed(k + s + d)
    x = torch.randn(2, 8, 37, 41, generator=g).to(dtype).contiguous(memory_format=layout)
    w = (torch.randn(8 * m, 1, k, k, generator=g) / k).to(dtype)
    b = torch.randn(8 * m, generator=g).to(dtype)
    outs, grads = [], []
    for dev in ("cpu", "cuda"):
        xs, ws, bs = (t.to(dev).detach().requires_grad_() for t in (x, w, b))
        y = atrous.depthwise_conv2d(xs, ws, bs, s, k // 2 * d, d)
        go = torch.ones_like(y)
        outs.append(y.float().cpu())
        grads.append([t.float().cpu() for t in torch.autograd.grad(y, (xs, ws, bs), go)])
    tol = DTYPE_TOL[dtype]
    torch.testing.assert_close(outs[1], outs[0], atol=tol * k, rtol=tol)
    for a, c in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, c, atol=tol * k * 40, rtol=tol * 10)


def test_unpool_cpu_equals_cuda_with_duplicates():
    g = torch.Generator().manual_seed(0)
    vals = torch.randn(3, 5, 10, 10, generator=g)
    idx = torch.randint(0, 25, (3, 5, 10, 10), generator=g)
    for layout in (torch.contiguous_format, torch.channels_last):
        v, i = vals.contiguous(memory_format=layout), idx.contiguous(memory_format=layout)
        cpu = atrous.max_unpool2d(v, i, 2, 2, 0, (20, 20))
        cuda = atrous.max_unpool2d(v.cuda(), i.cuda(), 2, 2, 0, (20, 20))
        assert torch.equal(cpu, cuda.cpu())


@pytest.mark.parametrize("dtype", list(DTYPE_TOL))
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("k,s,p,d,ceil", [(2, 2, 0, 1, False), (3, 2, 1, 1, True), ((3, 5), (2, 1), (1, 2), (2, 1), False)])
def test_max_pool_cpu_equals_cuda(dtype, layout, k, s, p, d, ceil):
    """Values, indices and gradient: the same on both devices, bit for bit (one summation order)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randint(-3, 4, (3, 19, 33, 41), generator=g).to(dtype).contiguous(memory_format=layout)
    go = torch.randn(3, 19, 33, 41, generator=g).to(dtype)
    outs = []
    for dev in ("cpu", "cuda"):
        xd = x.to(dev).requires_grad_()
        v, i = atrous.max_pool2d(xd, k, s, p, d, ceil, True)
        grad, = torch.autograd.grad(v, xd, go.to(dev)[..., :v.shape[-2], :v.shape[-1]].contiguous())
        outs.append([t.cpu() for t in (v, i, grad)])
        assert v.is_contiguous(memory_format=layout) and i.is_contiguous(memory_format=layout)
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_non_default_stream_and_other_device():
    x = torch.randn(4, 16, 30, 30, device="cuda")
    w = torch.randn(16, 1, 3, 3, device="cuda")
    ref = F.conv2d(x, w, None, 1, 1, 1, groups=16)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        out = atrous.depthwise_conv2d(x, w, None, 1, 1, 1)
    torch.cuda.current_stream().wait_stream(s)
    torch.testing.assert_close(out, ref)
    if torch.cuda.device_count() > 1:
        x1, w1 = x.to("cuda:1"), w.to("cuda:1")
        with torch.cuda.device(0):
            out1 = atrous.depthwise_conv2d(x1, w1, None, 1, 1, 1)
        assert out1.device == torch.device("cuda:1")
        torch.testing.assert_close(out1.cpu(), ref.cpu())


def test_cuda_graphs_reduce_overhead():
    torch._dynamo.reset()
    model = atrous.nn.DepthwiseConv2d(8, 3, padding=1).cuda()
    unpool = atrous.nn.MaxUnpool2d(2, validate_indices=False)

    def f(x):
        y, i = F.max_pool2d(model(x), 2, return_indices=True)
        return unpool(y, i, output_size=x.shape)

    compiled = torch.compile(f, mode="reduce-overhead", fullgraph=True)
    x = torch.randn(2, 8, 16, 16, device="cuda")
    for _ in range(3):
        out = compiled(x)
    torch.testing.assert_close(out, f(x))


def test_validating_unpool_refuses_graph_capture_clearly():
    vals = torch.randn(1, 1, 2, 2, device="cuda")
    idx = torch.zeros(1, 1, 2, 2, dtype=torch.int64, device="cuda")
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="validate_indices=False"):
        with torch.cuda.graph(graph):
            atrous.max_unpool2d(vals, idx, 2)


def test_memory_is_stable_over_many_iterations():
    x = torch.randn(2, 8, 20, 20, device="cuda", requires_grad=True)
    w = torch.randn(8, 1, 3, 3, device="cuda", requires_grad=True)
    y, i = F.max_pool2d(torch.randn(2, 8, 20, 20, device="cuda"), 2, return_indices=True)
    y.requires_grad_()

    def step():
        a = atrous.depthwise_conv2d(x, w, None, 1, 1, 1).sum()
        b = atrous.max_unpool2d(y, i, 2).sum()
        torch.autograd.grad(a + b, (x, w, y))

    step()
    gc.collect()  # other tests' garbage must not be freed inside the measured loop
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(1000):
        step()
    gc.collect()
    torch.cuda.synchronize()
    # No growth. (On the H100 of 2026-11-23, run under pytest-xdist beside other tests, an exact
    # equality failed with *less* memory allocated after the loop than before it.)
    assert torch.cuda.memory_allocated() <= before


def test_unpool_error_keeps_context_usable():
    vals = torch.randn(1, 2, 4, 4, device="cuda")
    idx = torch.full((1, 2, 4, 4), 1000, dtype=torch.int64, device="cuda")
    with pytest.raises(IndexError, match="index 1000"):
        atrous.max_unpool2d(vals, idx, 2)
    torch.cuda.synchronize()
    assert torch.equal((torch.ones(3, device="cuda") * 2).cpu(), torch.full((3,), 2.0))

"""The ops' autograd (csrc/autograd.cpp): a graph recorded exactly where a gradient is needed, every
gradient torch's, and the backward ops called straight below autograd exactly where nothing above
it could want to see them (torch.ops.atrous._direct_backward_calls counts those calls)."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import atrous


@pytest.fixture
def direct_calls():
    """The backward ops called straight below autograd since the test began."""
    start = torch.ops.atrous._direct_backward_calls()
    return lambda: torch.ops.atrous._direct_backward_calls() - start


def _tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, 9, 10, generator=g, dtype=torch.float64)
    return {
        "x": x,
        "w": torch.randn(6, 1, 3, 3, generator=g, dtype=torch.float64),
        "b": torch.randn(6, generator=g, dtype=torch.float64),
        "pw": torch.randn(5, 6, 1, 1, generator=g, dtype=torch.float64),
        "pb": torch.randn(5, generator=g, dtype=torch.float64),
    }


def _indices(x):
    return F.max_pool2d(x.detach(), 2, return_indices=True)[1]


# Each op through atrous and through torch, on the tensors of _tensors (by name).
CASES = {
    "depthwise_conv2d": (
        ("x", "w", "b"),
        lambda t: atrous.depthwise_conv2d(t["x"], t["w"], t["b"], 1, 1),
        lambda t: F.conv2d(t["x"], t["w"], t["b"], 1, 1, 1, 6)),
    "separable_conv2d": (
        ("x", "w", "b", "pw", "pb"),
        lambda t: atrous.separable_conv2d(t["x"], t["w"], t["pw"], t["b"], t["pb"], 2, 1, activation="relu6"),
        lambda t: F.conv2d(F.relu6(F.conv2d(t["x"], t["w"], t["b"], 2, 1, 1, 6)), t["pw"], t["pb"])),
    # Without the depthwise bias, the pointwise bias is the fourth tensor autograd sees.
    "separable_conv2d, no depthwise bias": (
        ("x", "w", "pw", "pb"),
        lambda t: atrous.separable_conv2d(t["x"], t["w"], t["pw"], None, t["pb"], 1, 1),
        lambda t: F.conv2d(F.conv2d(t["x"], t["w"], None, 1, 1, 1, 6), t["pw"], t["pb"])),
    "max_pool2d": (
        ("x",),
        lambda t: atrous.max_pool2d(t["x"], 3, 2, 1),
        lambda t: F.max_pool2d(t["x"], 3, 2, 1)),
    "max_unpool2d": (
        ("x",),
        lambda t: atrous.max_unpool2d(F.max_pool2d(t["x"], 2), _indices(t["x"]), 2),
        lambda t: F.max_unpool2d(F.max_pool2d(t["x"], 2), _indices(t["x"]), 2)),
}


class _Log(TorchDispatchMode):
    """Records the name of every op that reaches it."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.name())
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("op", list(CASES))
def test_no_gradient_needed_records_no_graph(op):
    _, ours, ref = CASES[op]
    t = _tensors()
    expected = ref(t)
    out = ours(t)
    torch.testing.assert_close(out, expected)
    assert out.grad_fn is None
    with torch.no_grad():  # parameters that require grad, in no_grad mode
        t2 = {k: torch.nn.Parameter(v) for k, v in t.items()}
        out = ours(t2)
    torch.testing.assert_close(out, expected)
    assert out.grad_fn is None and not out.requires_grad
    with torch.inference_mode():
        torch.testing.assert_close(ours(_tensors()), expected)


@pytest.mark.parametrize("op", list(CASES))
def test_each_tensor_alone_requiring_grad_gets_torchs_gradient(op, direct_calls):
    names, ours, ref = CASES[op]
    for name in names:
        t = _tensors()
        t[name].requires_grad_(True)
        out = ours(t)
        assert out.grad_fn is not None, name
        grad_out = torch.randn_like(out)
        before = direct_calls()
        got, = torch.autograd.grad(out, t[name], grad_out)
        assert direct_calls() - before == 1, name  # one backward op, called directly
        t = _tensors()
        t[name].requires_grad_(True)
        want, = torch.autograd.grad(ref(t), t[name], grad_out)
        torch.testing.assert_close(got, want, msg=f"{op}: gradient of {name}")


def test_max_pool_without_indices_pools_again_in_its_backward(direct_calls):
    x = _tensors()["x"].requires_grad_(True)
    out, idx = torch.ops.atrous.max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], False, False)
    assert idx.numel() == 0 and not idx.requires_grad
    got, = torch.autograd.grad(out, x, torch.ones_like(out))
    assert direct_calls() == 2  # the pool again, with indices, then its backward
    want, = torch.autograd.grad(F.max_pool2d(x, 3, 2, 1), x, torch.ones_like(out))
    torch.testing.assert_close(got, want)


def test_a_graph_built_by_the_backward_records_the_backward_op(direct_calls):
    t = _tensors()
    x = t["x"].requires_grad_(True)
    for op in (lambda v: atrous.depthwise_conv2d(v, t["w"], None, 1, 1), lambda v: atrous.max_pool2d(v, 3, 2, 1)):
        out = op(x)
        g, = torch.autograd.grad(out, x, torch.ones_like(out))
        before = direct_calls()
        # With create_graph and a gradient that requires grad, the backward op goes through
        # autograd, for a second derivative.
        g2, = torch.autograd.grad(op(x), x, torch.ones_like(out).requires_grad_(), create_graph=True)
        assert direct_calls() == before and g2.grad_fn is not None
        torch.testing.assert_close(g2, g)


def test_a_dispatch_mode_sees_the_backward_op(direct_calls):
    t = _tensors()
    w = t["w"].requires_grad_(True)
    out = atrous.depthwise_conv2d(t["x"], w, None, 1, 1)
    with _Log() as log:
        got, = torch.autograd.grad(out, w, torch.ones_like(out))
    assert "atrous::depthwise_conv2d_backward" in log.names and direct_calls() == 0
    want, = torch.autograd.grad(F.conv2d(t["x"], w, None, 1, 1, 1, 6), w, torch.ones_like(out))
    torch.testing.assert_close(got, want)


def test_vmap_without_gradients_goes_through_the_dispatcher():
    t = _tensors()
    x, w = t["x"], t["w"]
    got = torch.vmap(lambda v: atrous.depthwise_conv2d(v, w, None, 1, 1))(x.unsqueeze(1))
    torch.testing.assert_close(got, F.conv2d(x, w, None, 1, 1, 1, 6).unsqueeze(1))


def test_compiled_forward_keeps_the_direct_backward(direct_calls):
    t = _tensors()
    fn = torch.compile(lambda x, w, b: atrous.depthwise_conv2d(x, w, b, 1, 1), fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(fn(t["x"], t["w"], t["b"]), F.conv2d(t["x"], t["w"], t["b"], 1, 1, 1, 6))
    w = t["w"].requires_grad_(True)
    out = fn(t["x"], w, t["b"])
    # The backward (eager, without a graph of its own) calls the backward op directly.
    got, = torch.autograd.grad(out, w, torch.ones_like(out))
    want, = torch.autograd.grad(F.conv2d(t["x"], w, t["b"], 1, 1, 1, 6), w, torch.ones_like(out))
    torch.testing.assert_close(got, want)
    assert direct_calls() == 1


def test_functorch_gradient_transforms_are_refused_with_a_message():
    t = _tensors()
    with pytest.raises(RuntimeError, match="functorch"):
        torch.func.grad(lambda w: atrous.depthwise_conv2d(t["x"], w, None, 1, 1).sum())(t["w"])

"""The functional API's direct call below autograd (atrous._ops.call): taken exactly where autograd
has nothing to record, and every result and gradient the same either way."""

import pytest
import torch
import torch.nn.functional as F

import atrous
from atrous import _ops


@pytest.fixture
def below_calls(monkeypatch):
    """The number of calls the functional API made straight below autograd."""
    count = [0]
    guard = _ops._below_autograd

    def counting():
        count[0] += 1
        return guard()

    monkeypatch.setattr(_ops, "_below_autograd", counting)
    return count


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
    "max_pool2d": (
        ("x",),
        lambda t: atrous.max_pool2d(t["x"], 3, 2, 1),
        lambda t: F.max_pool2d(t["x"], 3, 2, 1)),
    "max_unpool2d": (
        ("x",),
        lambda t: atrous.max_unpool2d(F.max_pool2d(t["x"], 2), _indices(t["x"]), 2),
        lambda t: F.max_unpool2d(F.max_pool2d(t["x"], 2), _indices(t["x"]), 2)),
}


@pytest.mark.parametrize("op", list(CASES))
def test_no_gradient_needed_goes_below_autograd(op, below_calls):
    _, ours, ref = CASES[op]
    t = _tensors()
    expected = ref(t)
    out = ours(t)
    torch.testing.assert_close(out, expected)
    assert below_calls[0] >= 1 and out.grad_fn is None
    below_calls[0] = 0
    with torch.no_grad():  # parameters that require grad, in no_grad mode
        t2 = {k: torch.nn.Parameter(v) for k, v in t.items()}
        torch.testing.assert_close(ours(t2), expected)
    assert below_calls[0] >= 1
    below_calls[0] = 0
    with torch.inference_mode():
        torch.testing.assert_close(ours(_tensors()), expected)
    assert below_calls[0] >= 1


@pytest.mark.parametrize("op", list(CASES))
def test_each_tensor_alone_requiring_grad_goes_through_autograd(op, below_calls):
    names, ours, ref = CASES[op]
    for name in names:
        t = _tensors()
        t[name].requires_grad_(True)
        below_calls[0] = 0
        out = ours(t)
        assert below_calls[0] == 0, name
        assert out.grad_fn is not None, name
        grad_out = torch.randn_like(out)
        got, = torch.autograd.grad(out, t[name], grad_out)
        t = _tensors()
        t[name].requires_grad_(True)
        want, = torch.autograd.grad(ref(t), t[name], grad_out)
        torch.testing.assert_close(got, want, msg=f"{op}: gradient of {name}")


def test_functorch_transforms_go_through_the_dispatcher(below_calls):
    t = _tensors()
    x, w = t["x"], t["w"]
    got = torch.vmap(lambda v: atrous.depthwise_conv2d(v, w, None, 1, 1))(x.unsqueeze(1))
    torch.testing.assert_close(got, F.conv2d(x, w, None, 1, 1, 1, 6).unsqueeze(1))
    assert below_calls[0] == 0


def test_compiled_calls_go_through_the_dispatcher(below_calls):
    t = _tensors()
    fn = torch.compile(lambda x, w, b: atrous.depthwise_conv2d(x, w, b, 1, 1), fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(fn(t["x"], t["w"], t["b"]), F.conv2d(t["x"], t["w"], t["b"], 1, 1, 1, 6))
    w = t["w"].requires_grad_(True)
    out = fn(t["x"], w, t["b"])
    assert below_calls[0] == 0
    # The backward (eager, without a graph of its own) calls the backward op directly.
    got, = torch.autograd.grad(out, w, torch.ones_like(out))
    want, = torch.autograd.grad(F.conv2d(t["x"], w, t["b"], 1, 1, 1, 6), w, torch.ones_like(out))
    torch.testing.assert_close(got, want)
    assert below_calls[0] == 1


def test_backward_calls_the_backward_op_directly_unless_it_builds_a_graph(below_calls):
    t = _tensors()
    x = t["x"].requires_grad_(True)
    for op in (lambda v: atrous.depthwise_conv2d(v, t["w"], None, 1, 1), lambda v: atrous.max_pool2d(v, 3, 2, 1)):
        out = op(x)
        below_calls[0] = 0
        g, = torch.autograd.grad(out, x, torch.ones_like(out))
        assert below_calls[0] == 1
        # With create_graph and a gradient that requires grad, the backward op goes through
        # autograd, for a second derivative.
        g2, = torch.autograd.grad(op(x), x, torch.ones_like(out).requires_grad_(), create_graph=True)
        assert below_calls[0] == 1 and g2.grad_fn is not None
        torch.testing.assert_close(g2, g)

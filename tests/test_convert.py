"""atrous.convert: which modules it swaps, fuses and leaves, that the converted model computes what
the original computes (outputs, gradients, batch-norm statistics) in eval and training mode, that
its state_dict is the original's, and that it compiles, exports and trains under DDP."""

import copy
import gc
import socket

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import atrous
from atrous.nn import Absorbed, DepthwiseConv2d, FusedConv
from helpers import RecordOps


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)  # the models' initial weights


# --------------------------------------------------------------------------------------------------
# Small models


def randomize_norms(model, seed=0):
    """Batch norms with running statistics and affine parameters away from the identity, so that a
    wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return model


class SepBlock(nn.Module):
    """A separable block called module by module from forward, names of no convention."""

    def __init__(self, c=8, co=12, norms=True, act=nn.ReLU6, stride=1, dilation=1):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, stride, padding=dilation, dilation=dilation, groups=c, bias=not norms)
        self.n1 = nn.BatchNorm2d(c) if norms else nn.Identity()
        self.r = act() if act is not None else nn.Identity()
        self.b = nn.Conv2d(c, co, 1, bias=not norms)
        self.n2 = nn.BatchNorm2d(co) if norms else nn.Identity()

    def forward(self, x):
        return self.n2(self.b(self.r(self.n1(self.a(x)))))


class PlainPair(nn.Module):
    """dw -> ReLU -> pw with nothing else: the pair fuses for training too."""

    def __init__(self, c=8, co=16):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=2, dilation=2, groups=c)
        self.act = nn.ReLU(inplace=True)
        self.pw = nn.Conv2d(c, co, 1)

    def forward(self, x):
        return self.pw(self.act(self.dw(x)))


class Residual(nn.Module):
    """The depthwise output is also added back: it must not fuse (the intermediate is used twice)."""

    def __init__(self, c=8):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.pw = nn.Conv2d(c, c, 1)

    def forward(self, x):
        y = self.dw(x)
        return self.pw(y) + y


class DataDependent(nn.Module):
    """fx cannot trace this forward (a branch on values): convert traces its children instead."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))

    def forward(self, x):
        if x.sum() > 0:
            return self.body(x)
        return self.body(-x)


class PaddedConv(nn.Conv2d):
    """A conv subclass with its own forward (as timm's Conv2dSame): left as it is."""

    def forward(self, x):
        return super().forward(F.pad(x, (0, 1, 0, 1)))


class OwnPool(nn.MaxPool2d):
    def forward(self, x):
        return super().forward(x) * 1.0


class NormAct(nn.BatchNorm2d):
    """A batch norm that applies its activation (as timm's BatchNormAct2d)."""

    def __init__(self, c, act):
        super().__init__(c)
        self.drop = nn.Identity()
        self.act = act

    def forward(self, x):
        return self.act(self.drop(super().forward(x)))


class NormActBlock(nn.Module):
    """dw -> norm+ReLU -> empty slots (nn.Identity) -> pw -> norm+ReLU6 (timm's DepthwiseSeparableConv)."""

    def __init__(self, c=8, co=8):
        super().__init__()
        self.conv_dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn1 = NormAct(c, nn.ReLU(inplace=True))
        self.aa, self.se = nn.Identity(), nn.Identity()
        self.conv_pw = nn.Conv2d(c, co, 1, bias=False)
        self.bn2 = NormAct(co, nn.ReLU6(inplace=True))

    def forward(self, x):
        return self.bn2(self.conv_pw(self.se(self.aa(self.bn1(self.conv_dw(x))))))


def make_input(shape=(2, 8, 12, 12), seed=1, layout="contiguous"):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x


def param_grads(model, out, grad_out):
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.autograd.grad(out, params, grad_out)


def assert_same_function(ours, conv, model, x, rtol=1e-5, atol=1e-5, grad_tol=1e-4):
    """ours(x) (conv, or conv compiled) gives model(x) and the same gradients of x and of every
    parameter, in the order of model's parameters."""
    x = x.detach().requires_grad_()
    out, ref = ours(x), model(x)
    torch.testing.assert_close(out, ref, rtol=rtol, atol=atol)
    go = torch.randn_like(ref)
    for g1, g2 in zip(torch.autograd.grad(out, [x, *conv.parameters()], go),
                      torch.autograd.grad(ref, [x, *model.parameters()], go)):
        torch.testing.assert_close(g1, g2, rtol=grad_tol, atol=grad_tol)


def assert_same_state(a, b, tol=0.0):
    """The same keys, and the same tensors (to `tol` where a training step computed them)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=tol, atol=tol, msg=k)


# --------------------------------------------------------------------------------------------------
# What is fused, converted and left


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_eval_chain_folds_norms_and_fuses_into_one_separable_op(layout):
    model = randomize_norms(SepBlock()).eval()
    conv, summary = atrous.convert(model, return_summary=True)
    assert isinstance(conv.a, FusedConv) and conv.a.activation == "relu6"
    assert not any(m.training for m in conv.modules()), "the converted model keeps the original's mode"
    assert all(isinstance(getattr(conv, n), Absorbed) for n in ("n1", "r", "b", "n2"))
    assert summary.fused == [(["a", "n1", "r", "b", "n2"], "separable_conv2d, batch norm folded")]
    assert summary.converted == [] and summary.left == []
    assert isinstance(model.a, nn.Conv2d), "inplace=False must leave the original as it was"
    x = make_input(layout=layout)
    with torch.no_grad():
        out, ref = conv(x), model(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last if layout == "channels_last" else
                             torch.contiguous_format)
    assert_same_state(conv, model)


def test_eval_folds_the_norms_after_other_convs_which_torch_runs():
    model = randomize_norms(nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 3, groups=2, bias=False), nn.BatchNorm2d(12))).eval()
    conv, summary = atrous.convert(model, return_summary=True)
    assert summary.fused == [(["0", "1"], "conv2d, batch norm folded"), (["3", "4"], "conv2d, batch norm folded")]
    assert isinstance(conv[0], FusedConv) and not conv[0].depthwise and isinstance(conv[2], nn.ReLU)
    x = make_input()
    with torch.no_grad():
        torch.testing.assert_close(conv(x), model(x), rtol=1e-5, atol=1e-5)
    model.train()
    conv.train()
    torch.testing.assert_close(conv(x), model(x), rtol=1e-5, atol=1e-5)
    assert_same_state(conv, model, 1e-6)


def test_eval_mode_with_grad_backpropagates_through_the_fold():
    model = randomize_norms(SepBlock()).eval()
    conv = atrous.convert(model)
    assert_same_function(conv, conv, model, make_input())


def test_fused_chain_calls_the_separable_op_once():
    conv = atrous.convert(randomize_norms(SepBlock()).eval())
    with torch.no_grad(), RecordOps() as rec:
        conv(make_input())
    names = [str(f) for f, _ in rec.calls]
    assert names.count("atrous.separable_conv2d.default") == 1
    assert not any("convolution" in n or "batch_norm" in n for n in names), names


def test_training_mode_does_not_fold_and_converts_the_depthwise_conv_alone():
    model = SepBlock().train()
    conv, summary = atrous.convert(model, return_summary=True)
    assert summary.fused == [] and summary.converted == [("a", "depthwise_conv2d")]
    assert isinstance(conv.a, DepthwiseConv2d) and isinstance(conv.n1, nn.BatchNorm2d)
    x = make_input()
    assert_same_function(conv, conv, model, x)
    assert_same_state(conv, model, 1e-5)  # the running statistics moved the same way


def test_pair_without_norms_fuses_for_training_and_gives_every_gradient():
    model = PlainPair()
    conv, summary = atrous.convert(model, return_summary=True)
    assert summary.fused == [(["dw", "act", "pw"], "separable_conv2d")]
    assert isinstance(conv.dw, FusedConv) and conv.dw.activation == "relu"
    assert_same_function(conv, conv, model, make_input())


def test_converted_in_eval_then_trained_runs_the_chain_unfused_and_exactly():
    model = randomize_norms(SepBlock()).eval()
    conv = atrous.convert(model)
    model.train()
    conv.train()
    assert conv.n1.training and conv.a._members[0].training
    x = make_input()
    assert_same_function(conv, conv, model, x)
    assert_same_state(conv, model, 1e-5)
    conv.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(conv(x), model(x), rtol=1e-5, atol=1e-5)


def test_fold_bn_true_refuses_a_model_in_training_mode():
    with pytest.raises(ValueError, match="fold_bn=True .* eval mode"):
        atrous.convert(SepBlock().train(), fold_bn=True)
    with pytest.raises(ValueError, match="fold_bn must be None, True or False, got 'yes'"):
        atrous.convert(SepBlock(), fold_bn="yes")
    with pytest.raises(TypeError, match="model must be an nn.Module, got Tensor"):
        atrous.convert(torch.zeros(1))


def test_fold_bn_false_and_fuse_false():
    model = randomize_norms(SepBlock()).eval()
    conv, summary = atrous.convert(model, fold_bn=False, return_summary=True)
    assert summary.fused == [] and isinstance(conv.n1, nn.BatchNorm2d)
    plain = PlainPair()
    conv2, summary2 = atrous.convert(plain, fuse=False, return_summary=True)
    assert summary2.fused == [] and isinstance(conv2.dw, DepthwiseConv2d) and isinstance(conv2.pw, nn.Conv2d)
    x = make_input()
    with torch.no_grad():
        torch.testing.assert_close(conv(x), model(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(conv2(x), plain(x), rtol=1e-5, atol=1e-5)


def test_an_intermediate_used_twice_is_not_fused():
    model = Residual()
    conv, summary = atrous.convert(model, return_summary=True)
    assert summary.fused == [] and summary.converted == [("dw", "depthwise_conv2d")]
    x = make_input()
    torch.testing.assert_close(conv(x), model(x), rtol=1e-5, atol=1e-5)


def test_a_module_called_twice_or_shared_is_converted_but_not_fused():
    shared = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    model = nn.Sequential(shared, nn.ReLU(), nn.Conv2d(8, 8, 1), shared)
    conv, summary = atrous.convert(model, return_summary=True)
    assert summary.fused == [] and summary.converted == [("0", "depthwise_conv2d")]
    assert conv[0] is conv[3] and isinstance(conv[0], DepthwiseConv2d)
    x = make_input()
    torch.testing.assert_close(conv(x), model(x), rtol=1e-5, atol=1e-5)


def test_modules_it_cannot_convert_are_left_and_reported():
    model = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8, padding_mode="reflect"),
        nn.Conv2d(8, 8, 3, padding=1, groups=2),
        PaddedConv(8, 8, 3, groups=8),
        OwnPool(2),
        nn.MaxPool2d(2, ceil_mode=True),
    )
    conv, summary = atrous.convert(model, return_summary=True)
    left = dict(summary.left)
    assert "padding_mode='reflect'" in left["0"]
    assert "grouped but not depthwise" in left["1"] and "groups=2" in left["1"]
    assert "PaddedConv overrides nn.Conv2d's forward" in left["2"]
    assert "OwnPool overrides nn.MaxPool2d's forward" in left["3"]
    assert summary.converted == [("4", "max_pool2d")]
    assert all(type(conv[i]) is type(model[i]) for i in range(4))
    x = make_input(shape=(2, 8, 13, 13))
    torch.testing.assert_close(conv(x), model(x), rtol=1e-5, atol=1e-5)
    text = str(summary)
    assert text.startswith("atrous.convert: 1 modules converted, 0 chains fused, 4 left as they were")


def test_untraceable_forward_has_its_children_traced():
    model = randomize_norms(DataDependent()).eval()
    conv, summary = atrous.convert(model, return_summary=True)
    assert summary.fused == [(["body.0", "body.1", "body.2", "body.3", "body.4"],
                              "separable_conv2d, batch norm folded")]
    x = make_input()
    with torch.no_grad():
        torch.testing.assert_close(conv(x), model(x), rtol=1e-5, atol=1e-5)


def test_norms_that_apply_their_activation_and_empty_slots_between_fuse():
    model = randomize_norms(NormActBlock()).eval()
    conv, summary = atrous.convert(model, return_summary=True)
    assert summary.fused == [(["conv_dw", "bn1", "conv_pw", "bn2"], "separable_conv2d, batch norm folded")]
    assert conv.conv_dw.activation == "relu" and conv.conv_dw.post_activation == "relu6"
    assert type(conv.aa) is nn.Identity
    x = make_input() * 30
    with torch.no_grad():
        out, ref = conv(x), model(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert (ref == 6).any() and (ref == 0).any(), "the test should reach both clamps"
    model.train()
    conv.train()
    torch.testing.assert_close(conv(x), model(x), rtol=1e-5, atol=1e-5)


def test_inplace_converts_the_model_given():
    model = PlainPair()
    out = atrous.convert(model, inplace=True)
    assert out is model and isinstance(model.dw, FusedConv)


def test_a_depthwise_conv_as_the_model_itself():
    model = nn.Conv2d(8, 16, 3, groups=8)
    conv = atrous.convert(model)
    assert isinstance(conv, DepthwiseConv2d)
    x = make_input()
    torch.testing.assert_close(conv(x), model(x), rtol=1e-5, atol=1e-5)


def test_verbose_prints_and_logging_records_the_summary(capsys, caplog):
    with caplog.at_level("INFO", logger="atrous.convert"):
        atrous.convert(PlainPair(), verbose=True)
    assert "1 chains fused" in capsys.readouterr().out
    assert "fused     dw -> act -> pw: separable_conv2d" in caplog.text


# --------------------------------------------------------------------------------------------------
# Parameters and state


def test_parameters_are_shared_not_copied_and_checkpoints_load_both_ways():
    model = randomize_norms(SepBlock()).eval()
    conv = atrous.convert(model, inplace=True)
    original = randomize_norms(SepBlock(), seed=5).eval()
    x = make_input()
    with torch.no_grad():
        conv(x)  # the folded weights are kept from here on, until a source tensor changes
    # The original's checkpoint loads into the converted model, and the converted's back.
    conv.load_state_dict(original.state_dict())
    assert_same_state(conv, original)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), original(x), rtol=1e-5, atol=1e-5)
        conv.n2.running_var.mul_(2.0)  # in place, as a user might
        original.n2.running_var.mul_(2.0)
        torch.testing.assert_close(conv(x), original(x), rtol=1e-5, atol=1e-5)
    fresh = SepBlock().eval()
    fresh.load_state_dict(conv.state_dict())
    assert_same_state(fresh, original)
    # A parameter is registered once, under its original name.
    names = [n for n, _ in conv.named_parameters()]
    assert names == [n for n, _ in original.named_parameters()]
    assert conv.a.weight is conv.a.head.weight


def test_moving_casting_and_copying_a_converted_model():
    model = randomize_norms(SepBlock()).eval()
    conv = atrous.convert(model).double()
    x = make_input().double()
    with torch.no_grad():
        torch.testing.assert_close(conv(x), model.double()(x), rtol=1e-10, atol=1e-10)
    twin = copy.deepcopy(conv)
    with torch.no_grad():
        twin.n1.running_mean.add_(1.0)
        assert not torch.equal(twin(x), conv(x)), "a deep copy must hold its own tensors"
        twin.load_state_dict(conv.state_dict())
        torch.testing.assert_close(twin(x), conv(x), rtol=0, atol=0)


def test_max_pool_indices_reach_the_converted_unpool():
    class EncoderDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.MaxPool2d(2, return_indices=True)
            self.mid = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.unpool = nn.MaxUnpool2d(2)

        def forward(self, x):
            y, idx = self.pool(x)
            return self.unpool(self.mid(y), idx, output_size=x.shape[-2:])

    model = EncoderDecoder()
    conv, summary = atrous.convert(model, return_summary=True)
    assert sorted(summary.converted) == [("mid", "depthwise_conv2d"), ("pool", "max_pool2d"),
                                         ("unpool", "max_unpool2d")]
    assert_same_function(conv, conv, model, make_input(shape=(2, 8, 13, 11)))


# --------------------------------------------------------------------------------------------------
# torch.compile and torch.export


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["eval_folded", "train_pair"])
def test_converted_model_compiles_with_fullgraph(kind):
    torch._dynamo.reset()
    if kind == "eval_folded":
        model = randomize_norms(SepBlock()).eval()
    else:
        model = PlainPair()
    conv = atrous.convert(model)
    assert_same_function(torch.compile(conv, fullgraph=True), conv, model, make_input())


@pytest.mark.slow
def test_converted_model_exports():
    model = randomize_norms(SepBlock()).eval()
    conv = atrous.convert(model)
    x = make_input()
    exported = torch.export.export(conv, (x,))
    targets = [str(n.target) for n in exported.graph.nodes if n.op == "call_function"]
    assert "atrous.separable_conv2d.default" in targets
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x), rtol=1e-5, atol=1e-5)
    # The exported program's state is the original's, by key.
    assert set(exported.state_dict) <= set(model.state_dict())


# --------------------------------------------------------------------------------------------------
# One DistributedDataParallel training step (gloo, CPU, two processes)


def _ddp_worker(rank, world, port, result_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    base = nn.Sequential(SepBlock(8, 16, norms=True), PlainPair(16, 8), nn.MaxPool2d(2))
    models = {"torch": copy.deepcopy(base), "atrous": atrous.convert(base)}
    x = make_input((2, 8, 12, 12), seed=10 + rank)
    after = {}
    for name, m in models.items():
        ddp = nn.parallel.DistributedDataParallel(m)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        ddp(x).square().mean().backward()
        opt.step()
        after[name] = {k: v.clone() for k, v in m.state_dict().items()}
        del ddp, opt
    if rank == 0:
        torch.save(after, result_path)
    # Tear the process group down while Python still runs. The allreduces queued during backward
    # hold torch's thread-local state, which now includes a Python object (the context that
    # torch.autograd stashes for the backward); if the group outlives the script, its worker thread
    # may drop the last reference during interpreter shutdown, when it can no longer take the GIL,
    # and std::terminate aborts the process (1 run in about 30 here, torch 2.14.1). With no DDP
    # object left, destroying the group joins its worker threads.
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_one_ddp_training_step_matches_the_original(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = str(tmp_path / "after.pt")
    mp.spawn(_ddp_worker, args=(2, port, path), nprocs=2, join=True)
    after = torch.load(path)
    assert list(after["torch"]) == list(after["atrous"])
    for k in after["torch"]:
        torch.testing.assert_close(after["atrous"][k], after["torch"][k], rtol=1e-4, atol=1e-5, msg=k)


# --------------------------------------------------------------------------------------------------
# Real networks (random weights, nothing downloaded)

TORCHVISION = ["mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny",
               "segmentation.deeplabv3_mobilenet_v3_large"]


def build_torchvision(name):
    tv = pytest.importorskip("torchvision")
    ns = tv.models
    for part in name.split(".")[:-1]:
        ns = getattr(ns, part)
    kwargs = {"weights_backbone": None} if name.startswith("segmentation.") else {}
    torch.manual_seed(0)
    return getattr(ns, name.split(".")[-1])(weights=None, **kwargs)


def network_output(out):
    return out["out"] if isinstance(out, dict) else out


def depthwise_count(model):
    return sum(1 for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1)


def assert_close_scaled(a, b, rel):
    torch.testing.assert_close(a, b, rtol=rel, atol=rel * float(b.detach().abs().max()))


def assert_grads_close(model, ours, theirs, rel):
    """Every parameter's gradient, to `rel` of the largest gradient of the network: a bias before a
    training-mode batch norm has a true gradient of zero, which both compute as rounding noise."""
    scale = max(float(g.abs().max()) for g in theirs)
    for (name, _), g1, g2 in zip(model.named_parameters(), ours, theirs):
        torch.testing.assert_close(g1, g2, rtol=rel, atol=rel * scale, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_network_in_eval_mode_folds_and_matches(name):
    model = randomize_norms(build_torchvision(name)).eval()
    conv, summary = atrous.convert(model, return_summary=True)
    heads = [what.split(",")[0] for _, what in summary.fused]
    covered = heads.count("depthwise_conv2d") + heads.count("separable_conv2d") + sum(
        1 for _, what in summary.converted if what == "depthwise_conv2d")
    assert covered == depthwise_count(model) and not summary.left, str(summary)
    norms = sum(1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert sum(what.endswith("batch norm folded") for _, what in summary.fused) >= norms // 2, str(summary)
    if name == "mobilenet_v2":
        separable = [p for p, what in summary.fused if what.startswith("separable_conv2d")]
        assert len(separable) == 17 and all(len(p) == 5 for p in separable)
        assert heads.count("conv2d") == 52 - 2 * 17, "every other conv has its batch norm folded"
    x = make_input((2, 3, 96, 96), seed=3)
    with torch.no_grad():
        assert_close_scaled(network_output(conv(x)), network_output(model(x)), 1e-4)
    assert_same_state(conv, model)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_network_in_training_mode_matches_outputs_and_gradients(name, layout):
    if layout == "channels_last" and name.startswith("segmentation."):
        pytest.skip("one layout suffices for the segmentation network")
    model = build_torchvision(name).train()
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    conv, summary = atrous.convert(model, return_summary=True)
    assert not summary.left, str(summary)
    x = make_input((2, 3, 64, 64), seed=4).contiguous(memory_format=fmt)
    torch.manual_seed(7)
    out = network_output(conv(x))
    torch.manual_seed(7)
    ref = network_output(model(x))
    assert_close_scaled(out, ref, 1e-4)
    assert_same_state(conv, model, 1e-4)
    # The gradients in float64. In float32 a ReLU6 input within rounding of 0 or 6 may fall on the
    # other side of its kink in one of the two networks and not the other (mobilenet_v2 has one,
    # 3e-5 from it, at this input: its forward is as close to float64 in both, 1e-6), and the
    # switched gradient then reaches every layer before it: gradients of a deep ReLU network agree
    # to float32 rounding only where no activation sits that close to a kink.
    model = copy.deepcopy(model).double()
    conv = atrous.convert(model)
    x = x.double()
    torch.manual_seed(7)
    out = network_output(conv(x))
    torch.manual_seed(7)
    ref = network_output(model(x))
    go = torch.randn_like(ref)
    assert_grads_close(model, param_grads(conv, out, go), param_grads(model, ref, go), 1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("name, mode, fused", [("legacy_xception", "train", 34), ("mobilenetv1_100", "eval", 13)])
def test_timm_network_matches(name, mode, fused):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)
    model = randomize_norms(model).train(mode == "train")
    conv, summary = atrous.convert(model, return_summary=True)
    assert sum(what.startswith("separable_conv2d") for _, what in summary.fused) == fused, str(summary)
    x = make_input((2, 3, 64, 64), seed=5)
    if mode == "train":
        out, ref = conv(x), model(x)
        assert_close_scaled(out, ref, 1e-4)
        go = torch.randn_like(ref)
        assert_grads_close(model, param_grads(conv, out, go), param_grads(model, ref, go), 1e-3)
    else:
        with torch.no_grad():
            assert_close_scaled(conv(x), model(x), 1e-4)
    assert_same_state(conv, model, 1e-4)


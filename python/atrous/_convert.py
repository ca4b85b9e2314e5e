"""atrous.convert: a model's depthwise convolutions, max-pools and max-unpools swapped for atrous ones,
its depthwise -> [BatchNorm] -> [ReLU/ReLU6] -> pointwise [-> BatchNorm] chains fused into one op, and
(in eval mode) the batch norms after its other convs folded into them.

How a model is changed, and why its state_dict does not change:

- A depthwise ``nn.Conv2d`` becomes an :class:`atrous.nn.DepthwiseConv2d` that holds the conv's own
  ``weight`` and ``bias`` Parameters; ``nn.MaxPool2d`` and ``nn.MaxUnpool2d`` (no parameters) become
  their atrous modules.
- A chain becomes a :class:`atrous.nn.FusedConv` at its head conv's place and an
  :class:`atrous.nn.Absorbed` at the place of every other member. Both keep the original module
  (unregistered) and share its parameter and buffer dictionaries, so every tensor stays registered once, under its original key, and moves,
  loads and saves as before. The fused module reads the members' tensors when it runs: batch norms
  are folded into the conv weights then (the folded tensors are kept until a source changes), so a
  checkpoint loaded later is honoured.
- Chains are found from the model's structure: ``torch.fx`` traces the model (or, where a module
  cannot be traced, each of its children) and a chain is a run of modules each of whose outputs goes
  only to the next. The module names play no part.
- A batch norm is folded only in eval mode. A converted model set back to training runs a chain
  that holds batch norms unfused (atrous depthwise, then the original modules), which is exact.
"""

import copy
import logging
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn

from . import functional as AF
from . import nn as ann

__all__ = ["convert", "Conversion"]

logger = logging.getLogger("atrous.convert")


# ---------------------------------------------------------------------------------------------------
# Which modules qualify


def _runs_own_forward(module, cls):
    """module is a cls whose forward is cls's own (not a subclass's, such as timm's Conv2dSame,
    which pads in its forward)."""
    if not isinstance(module, cls) or type(module).forward is not cls.forward:
        return False
    return cls is not nn.Conv2d or type(module)._conv_forward is nn.Conv2d._conv_forward


def _depthwise_refusal(conv):
    """None if conv is a depthwise nn.Conv2d atrous runs, else why not."""
    if not _runs_own_forward(conv, nn.Conv2d):
        return f"{type(conv).__name__} overrides nn.Conv2d's forward"
    if not (conv.groups == conv.in_channels > 1) or conv.out_channels % conv.in_channels:
        return (f"grouped but not depthwise (in_channels={conv.in_channels}, out_channels={conv.out_channels}, "
                f"groups={conv.groups})")
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode!r} (atrous pads with zeros only)"
    return None


def _is_pointwise(conv, in_channels):
    return (_runs_own_forward(conv, nn.Conv2d) and conv.in_channels == in_channels and conv.groups == 1
            and tuple(conv.kernel_size) == (1, 1) and tuple(conv.stride) == (1, 1)
            and tuple(conv.dilation) == (1, 1) and conv.padding in ((0, 0), "valid", "same")
            and conv.padding_mode == "zeros")


def _norm_fold(bn, channels):
    """How an eval-mode batch norm over `channels` channels with running statistics folds into the
    conv before it: (True, None) for nn.BatchNorm2d, (True, 'relu' or 'relu6') for a batch norm
    that applies that activation itself (timm's BatchNormAct2d: a BatchNorm2d subclass whose only
    children are an nn.Identity `drop` and its `act`); (False, None) where it does not fold."""
    if (not isinstance(bn, nn.BatchNorm2d) or bn.training or not bn.track_running_stats
            or bn.running_mean is None or bn.num_features != channels):
        return False, None
    if _runs_own_forward(bn, nn.BatchNorm2d):
        return True, None
    children = dict(bn.named_children())
    if set(children) == {"drop", "act"} and type(children["drop"]) is nn.Identity:
        if type(children["act"]) is nn.Identity:
            return True, None
        act = ann.activation_of(children["act"])
        if act is not None:
            return True, act
    return False, None


# ---------------------------------------------------------------------------------------------------
# Finding chains


class _Tracer(torch.fx.Tracer):
    """Leaves: torch.nn's modules (as fx's default), atrous's own, and every batch norm (a subclass
    that adds an activation is recognised as a whole)."""

    def is_leaf_module(self, m, qualname):
        return (type(m).__module__.startswith("atrous.") or isinstance(m, nn.modules.batchnorm._BatchNorm)
                or super().is_leaf_module(m, qualname))


@dataclass
class _Chain:
    dw: str  # the head: a depthwise conv, or (depthwise False) another conv whose batch norm folds
    depthwise: bool = True
    bn1: str = None
    act: str = None
    pw: str = None
    bn2: str = None
    activation: str = None  # between the depthwise and the pointwise conv
    post_activation: str = None  # after the last member (from a batch norm that applies it)

    def paths(self):
        return [p for p in (self.dw, self.bn1, self.act, self.pw, self.bn2) if p is not None]


def _traced_graphs(module, prefix):
    """(prefix, graph) for module, or for each of its children where module cannot be traced."""
    if not any(True for _ in module.children()):
        return []
    try:
        return [(prefix, _Tracer().trace(module))]
    except Exception as e:  # fx cannot trace data-dependent control flow and the like
        logger.debug("torch.fx cannot trace %s (%s: %s); tracing its children", prefix or "the model",
                     type(e).__name__, e)
    found = []
    for name, child in module.named_children():
        found.extend(_traced_graphs(child, f"{prefix}{name}."))
    return found


class _Walk:
    """The chains of one traced graph: a conv whose output goes only to the next member, and so on.

    A chain's head is a depthwise conv (atrous runs it), or with ``fold`` any other plain conv
    followed by a batch norm to fold (torch runs it, with the folded weights); then an eval-mode
    batch norm (``fold``); then, after a depthwise head and with ``fuse``, a ReLU/ReLU6 and a 1x1
    conv over its channels, and that conv's batch norm (``fold``)."""

    def __init__(self, modules, prefix, graph, fold, fuse, unique):
        self.modules, self.prefix, self.fold, self.fuse, self.unique = modules, prefix, fold, fuse, unique
        self.graph = graph
        self.calls = Counter(n.target for n in graph.nodes if n.op == "call_module")

    def path(self, node):
        return self.prefix + node.target

    def module(self, node):
        return self.modules[self.path(node)]

    def once(self, node):
        """node calls a module that this graph calls only here, and that sits at one path only."""
        return node.op == "call_module" and self.calls[node.target] == 1 and self.unique(self.path(node))

    def single(self, node):
        """The module call that alone takes node's output, as its only argument, if any; an
        nn.Identity on the way (timm's empty `aa` and `se` slots) is looked through."""
        while True:
            users = list(node.users)
            if len(users) != 1:
                return None
            user = users[0]
            if not self.once(user) or user.args != (node,) or user.kwargs:
                return None
            if type(self.module(user)) is not nn.Identity:
                return user
            node = user

    def norm(self, node, channels):
        """(path, activation it applies) of a foldable batch norm at node, else (None, None)."""
        if not self.fold or node is None:
            return None, None
        ok, act = _norm_fold(self.module(node), channels)
        return (self.path(node), act) if ok else (None, None)

    def chain_at(self, node):
        if not self.once(node) or not isinstance(self.module(node), nn.Conv2d):
            return None
        head = self.module(node)
        depthwise = _depthwise_refusal(head) is None
        if not depthwise and not (_runs_own_forward(head, nn.Conv2d) and self.fold):
            return None
        chain = _Chain(self.path(node), depthwise=depthwise)
        nxt = self.single(node)
        chain.bn1, inner = self.norm(nxt, head.out_channels)  # inner: an activation the batch norm applies
        if chain.bn1 is not None:
            nxt = self.single(nxt)
        act = None
        if depthwise and self.fuse and inner is None and nxt is not None and ann.activation_of(self.module(nxt)):
            act, nxt = nxt, self.single(nxt)
        if depthwise and self.fuse and nxt is not None and _is_pointwise(self.module(nxt), head.out_channels):
            chain.act = self.path(act) if act is not None else None
            chain.activation = inner or (ann.activation_of(self.module(act)) if act is not None else None)
            chain.pw = self.path(nxt)
            chain.bn2, chain.post_activation = self.norm(self.single(nxt), self.module(nxt).out_channels)
        else:
            chain.post_activation = inner
        if chain.bn1 is None and chain.pw is None:
            return None
        return chain


def _find_chains(model, modules, fold, fuse, unique):
    """Every chain of model (see _Walk), found in the graphs torch.fx traces of it; `modules` maps
    each of model's module paths to its module."""
    chains = []
    taken = set()  # a module belongs to one chain: the first, in the order the graph runs them
    for prefix, graph in _traced_graphs(model, ""):
        walk = _Walk(modules, prefix, graph, fold, fuse, unique)
        for node in graph.nodes:
            chain = walk.chain_at(node) if node.op == "call_module" and walk.path(node) not in taken else None
            if chain is not None:
                chains.append(chain)
                taken.update(chain.paths())
    return chains


# ---------------------------------------------------------------------------------------------------
# The conversion


@dataclass
class Conversion:
    """What :func:`convert` did: ``converted`` and ``left`` list (path, what) pairs, ``fused`` the
    chains (their paths, head first)."""

    converted: list = field(default_factory=list)
    fused: list = field(default_factory=list)
    left: list = field(default_factory=list)

    def __str__(self):
        lines = [f"atrous.convert: {len(self.converted)} modules converted, {len(self.fused)} chains fused, "
                 f"{len(self.left)} left as they were"]
        lines += [f"  converted {p or '(the model)'}: {what}" for p, what in self.converted]
        lines += [f"  fused     {' -> '.join(paths)}: {what}" for paths, what in self.fused]
        lines += [f"  left      {p or '(the model)'}: {why}" for p, why in self.left]
        return "\n".join(lines)


# The parameterless modules swapped one for one: torch class -> (its atrous module, the op).
_POOLS = {nn.MaxPool2d: (ann.MaxPool2d.from_pool, "max_pool2d"),
          nn.MaxUnpool2d: (ann.MaxUnpool2d.from_unpool, "max_unpool2d")}


def _replace(model, path, new):
    if not path:
        return new
    parent_path, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent_path), name, new)
    return model


def convert(model, inplace=False, fuse=True, fold_bn=None, *, return_summary=False, verbose=False):
    """The model with its layers swapped for atrous ones, computing what it computed.

    - every ``nn.Conv2d`` with groups == in_channels > 1 (out_channels a multiple, zero padding)
      runs :func:`atrous.depthwise_conv2d`; every ``nn.MaxPool2d`` runs :func:`atrous.max_pool2d`,
      every ``nn.MaxUnpool2d`` :func:`atrous.max_unpool2d`;
    - ``fuse``: a depthwise conv whose output goes only to a 1x1 conv (through at most a ReLU or
      ReLU6 module, and with ``fold_bn`` batch norms) runs as one :func:`atrous.separable_conv2d`;
    - ``fold_bn``: an eval-mode ``nn.BatchNorm2d`` right after a conv (depthwise, the pointwise conv
      of a fused chain, or any other ``nn.Conv2d``, which torch then runs with the folded weights)
      is folded into the conv's weights. None (the default) folds when the model is in eval mode;
      True refuses a model in training mode; False never folds.

    Parameters stay in their modules under their keys (shared, never copied), so state_dicts load
    both ways. Modules it cannot convert (other padding modes, grouped convs that are not
    depthwise, subclasses with their own forward) are left as they are. The summary of what changed
    and what was left is logged (``logging`` name ``"atrous.convert"``), printed with ``verbose``,
    and returned as a :class:`Conversion` with ``return_summary`` (the result is then a pair).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if fold_bn not in (None, True, False):
        raise ValueError(f"fold_bn must be None, True or False, got {fold_bn!r}")
    if fold_bn and model.training:
        raise ValueError("fold_bn=True folds batch norms with their running statistics, which needs the model in "
                         "eval mode; call model.eval() first, or pass fold_bn=None or False")
    fold = (not model.training) if fold_bn is None else fold_bn
    if not inplace:
        model = copy.deepcopy(model)

    # A module at several paths (shared) is converted at all of them, but fused at none.
    modules_at = dict(model.named_modules(remove_duplicate=False))
    occurrences = Counter(id(m) for m in modules_at.values())
    summary = Conversion()
    chains = _find_chains(model, modules_at, fold, fuse, lambda p: occurrences[id(modules_at[p])] == 1)

    replacements = {}  # id(original module) -> new module
    for chain in chains:
        members = [modules_at[p] if p is not None else None
                   for p in (chain.dw, chain.bn1, chain.act, chain.pw, chain.bn2)]
        fused = ann.FusedConv(*members, activation=chain.activation, post_activation=chain.post_activation,
                              names=chain.paths(), depthwise=chain.depthwise)
        replacements[id(members[0])] = fused
        for m, p in zip(members[1:], (chain.bn1, chain.act, chain.pw, chain.bn2)):
            if m is not None:
                replacements[id(m)] = ann.Absorbed(m, chain.dw)
        op = "separable_conv2d" if chain.pw is not None else "depthwise_conv2d" if chain.depthwise else "conv2d"
        what = op + (", batch norm folded" if chain.bn1 or chain.bn2 else "")
        summary.fused.append((chain.paths(), what))

    for path, module in modules_at.items():
        if id(module) in replacements:
            continue
        if isinstance(module, nn.Conv2d) and module.groups > 1:
            why = _depthwise_refusal(module)
            if why is None:
                replacements[id(module)] = ann.DepthwiseConv2d.from_conv(module)
                summary.converted.append((path, "depthwise_conv2d"))
            else:
                summary.left.append((path, why))
        else:
            for cls, (make, op) in _POOLS.items():
                if isinstance(module, cls):
                    if _runs_own_forward(module, cls):
                        replacements[id(module)] = make(module)
                        summary.converted.append((path, op))
                    else:
                        summary.left.append((path, f"{type(module).__name__} overrides nn.{cls.__name__}'s forward"))

    # Deepest first, so that a parent is looked up before anything above it changes.
    for path, module in sorted(modules_at.items(), key=lambda pm: -pm[0].count(".")):
        if id(module) in replacements:
            new = replacements[id(module)]
            new.train(module.training)  # new modules start in training mode
            model = _replace(model, path, new)

    logger.info("%s", summary)
    if verbose:
        print(summary)
    return (model, summary) if return_summary else model

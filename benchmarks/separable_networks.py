"""The network mode of bench_separable.py: every depthwise-then-pointwise pair of timm's networks,
timed at the shape its network gives it.

A pair is a depthwise nn.Conv2d (groups == in_channels > 1) whose output reaches a 1x1 nn.Conv2d
(stride 1, groups 1) through nothing but batch norms and at most one ReLU/ReLU6 (found by forward
hooks, random weights, nothing downloaded). Nothing between: the pair fuses for training too
(legacy_xception). A batch norm between: it fuses once the norm is folded into the depthwise
weight and bias in eval mode (mobilenetv1_100, ReLU between); the timing is of the fused op at the
pair's shape either way. Distinct shapes are timed once.
"""

import torch
from common import progress

NETWORKS = ["legacy_xception", "mobilenetv1_100"]
CONFIGS = [("batch 1, 224 px", 1, 224), ("batch 8, 160 px", 8, 160)]


def separable_pairs(name, batch, size):
    """(shape, C_out, kernel, stride, padding, dilation, activation) of each pair, in order."""
    import timm

    model = timm.create_model(name, pretrained=False).eval()
    calls = []
    inside_norm = set()
    for m in model.modules():
        if "BatchNorm" in type(m).__name__:
            inside_norm.update(id(c) for c in m.modules() if c is not m)
    kinds = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.ReLU, torch.nn.ReLU6)
    hooked = [m for m in model.modules() if isinstance(m, kinds) and id(m) not in inside_norm]
    handles = [m.register_forward_hook(lambda m, a, o: calls.append((m, a[0], o))) for m in hooked]
    with torch.no_grad():
        model(torch.zeros(batch, 3, size, size))
    for h in handles:
        h.remove()

    def activation_of(m):
        act = getattr(m, "act", m)
        return {torch.nn.ReLU: "relu", torch.nn.ReLU6: "relu6"}.get(type(act))

    pairs = []
    for i, (m, x, out) in enumerate(calls):
        if not (isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1):
            continue
        act, prev = None, out
        for m2, x2, out2 in calls[i + 1:]:
            if x2.data_ptr() != prev.data_ptr() or x2.shape != prev.shape:
                break
            if isinstance(m2, torch.nn.Conv2d):
                if tuple(m2.kernel_size) == (1, 1) and tuple(m2.stride) == (1, 1) and m2.groups == 1:
                    pairs.append((tuple(x.shape), m2.out_channels, m.kernel_size[0], m.stride[0], m.padding[0],
                                  m.dilation[0], act, m.out_channels // m.in_channels))
                break
            a = activation_of(m2)
            if a is not None:
                if act is not None:
                    break
                act = a
            prev = out2
    return pairs


def run_networks(emit, args, layouts, dtype, time_shape, emit_rows):
    configs = [c for c in CONFIGS if not args.config or any(s in c[0] for s in args.config)]
    for cname, batch, size in configs:
        for net in NETWORKS:
            pairs = separable_pairs(net, batch, size)
            unique = {}
            for p in pairs:
                unique[p] = unique.get(p, 0) + 1
            emit(f"\n### separable pairs of {net}, {cname}, {str(dtype).split('.')[-1]}, threads {args.threads}: "
                 f"{len(pairs)} pairs, {len(unique)} distinct\n")
            rows = []
            for (shape, co, k, s, p, d, act, mult), uses in progress(unique.items(), len(unique), f"{net}, {cname}"):
                assert mult == 1 and 2 * p == (k - 1) * d, "a pair the cases do not describe"
                n, c, h, w = shape
                label = f"({n}, {c}, {h}, {w}) -> {co} {k}x{k}" + (f" s{s}" if s > 1 else "") + \
                    (f" {act}" if act else "") + (f" x{uses}" if uses > 1 else "")
                for layout in layouts:
                    rows.append((label, layout, *time_shape(n, c, co, h, w, k, s, d, act, layout, dtype, args)))
            emit_rows(emit, rows)

"""Batch normalisation folded into the convolution before it, for prediction.

In eval mode a ``BatchNorm2d`` is a per-channel scale and shift of its input. When its input is
the output of a convolution (and of nothing else), the scale and shift can be moved into that
convolution's weights and bias, and the normalisation layer dropped: the network computes the
same function with one memory-bound kernel fewer per pair. ResNets have one such pair per
convolution, and so do the heatmap heads.

Pairs are found by running the network once with hooks on its convolutions and normalisation
layers (a normalisation layer whose input *is* a convolution's output, each called once), not
from module names or a traced graph, so the search sees what ``forward`` really does, whatever
the network. The folding uses PyTorch's own ``torch.nn.utils.fusion``, and it is checked: the
folded network must give the same outputs on a probe input (tolerance :data:`TOLERANCE_PX`
and :data:`TOLERANCE_CONFIDENCE`), or every change is undone and the network predicts as it
was. A convolution whose output also feeds something else would fail that check.

:func:`fold_state_dict` folds a checkpoint's weights by the pairs found on another copy of the
same network (an ensemble's members are copies of the first: :func:`~vidpose.predict.load_model`
with ``like``), so the search and its check run once per network, not once per member.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_conv_bn_weights

TOLERANCE_PX = 1e-3
"""Largest difference in keypoint coordinates (input px) a folded network may show on the probe
input, in float32. Folding only reorders float32 arithmetic: measured differences are ~1e-5."""

TOLERANCE_CONFIDENCE = 1e-4
"""Largest difference in confidence a folded network may show on the probe input."""

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class FoldedPair:
    """A convolution and the normalisation folded into it (module names in the network)."""

    conv: str
    norm: str
    eps: float
    transpose: bool


def find_pairs(network: nn.Module, run: Callable[[], Any]) -> list[FoldedPair]:
    """The (convolution, normalisation) pairs of ``network`` that ``run()`` shows to be
    foldable: the normalisation's input is the convolution's output, both run once, and the
    normalisation uses running statistics (eval mode, ``track_running_stats``)."""
    names = {m: n for n, m in network.named_modules()}
    calls: dict[str, int] = {}
    outputs: dict[int, tuple[str, Tensor]] = {}  # id(output tensor) -> (conv, the tensor)
    inputs: list[tuple[str, Tensor]] = []  # (norm, its input), in call order

    def on_conv(module: nn.Module, args: tuple, out: Any) -> None:
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        if isinstance(out, Tensor):
            outputs[id(out)] = (name, out)  # the tensor is held: its id stays unique

    def on_norm(module: nn.Module, args: tuple) -> None:
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        if args and isinstance(args[0], Tensor):
            inputs.append((name, args[0]))

    handles = []
    try:
        for module, name in names.items():
            if isinstance(module, _CONVS):
                handles.append(module.register_forward_hook(on_conv))
            elif isinstance(module, _NORMS) and name:
                handles.append(module.register_forward_pre_hook(on_norm))
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    modules = dict(network.named_modules())
    pairs = []
    taken: set[str] = set()
    for norm, x in inputs:
        conv, out = outputs.get(id(x), (None, None))
        if conv is None or out is not x or conv in taken:
            continue
        bn = modules[norm]
        if calls.get(conv) != 1 or calls.get(norm) != 1:
            continue
        if bn.training or bn.running_mean is None or bn.running_var is None:
            continue
        taken.add(conv)
        transpose = isinstance(modules[conv], nn.ConvTranspose1d | nn.ConvTranspose2d)
        pairs.append(FoldedPair(conv, norm, float(bn.eps), transpose))
    return pairs


def fold_batchnorm(
    network: nn.Module,
    probe: Tensor,
    forward: Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]],
) -> list[FoldedPair]:
    """Fold, in place, every normalisation layer of ``network`` (in eval mode) that follows a
    convolution into it; the pairs folded. None, and the network as it was, when the folded
    network's outputs differ or the probe cannot run through it (the folding is only a speed-up:
    a network it does not suit predicts unfolded).

    Args:
        network: the network, in eval mode, float32.
        probe: an input for ``forward`` (a small batch is enough: this runs the network 3 times).
        forward: ``(network, probe) -> (coords, confidence)``.
    """
    if network.training:
        raise ValueError("fold_batchnorm needs a network in eval mode")
    undo: list[tuple[nn.Module, str, nn.Module]] = []
    with torch.no_grad():
        try:
            pairs = find_pairs(network, lambda: forward(network, probe))
            if not pairs:
                return []
            before = forward(network, probe)
        except Exception:  # nothing changed yet
            return []
        try:
            _apply(network, pairs, undo)
            same = outputs_close(before, forward(network, probe))
        except Exception:
            same = False
    if not same:
        restore(undo)
        return []
    return pairs


def restore(undo: list[tuple[nn.Module, str, nn.Module]]) -> None:
    """Put back the modules a failed rewrite replaced: ``undo``'s (parent, attribute, old
    module), in reverse order."""
    for parent, key, module in reversed(undo):
        setattr(parent, key, module)


def fold_state_dict(state: Mapping[str, Tensor], pairs: list[FoldedPair]) -> dict[str, Tensor]:
    """A network's unfolded weights -> the weights of its folded copy (the same ``pairs``)."""
    out = dict(state)
    for p in pairs:
        w, b = fuse_conv_bn_weights(
            out[f"{p.conv}.weight"],
            out.get(f"{p.conv}.bias"),
            out.pop(f"{p.norm}.running_mean"),
            out.pop(f"{p.norm}.running_var"),
            p.eps,
            out.pop(f"{p.norm}.weight", None),
            out.pop(f"{p.norm}.bias", None),
            transpose=p.transpose,
        )
        out.pop(f"{p.norm}.num_batches_tracked", None)
        out[f"{p.conv}.weight"] = w.detach()
        out[f"{p.conv}.bias"] = b.detach()
    return out


def _apply(
    network: nn.Module, pairs: list[FoldedPair], undo: list[tuple[nn.Module, str, nn.Module]]
) -> None:
    """Replace each pair's convolution by the folded one and its norm by an identity, adding
    to ``undo`` what was replaced, as (parent, attribute, old module), as it goes."""
    modules = dict(network.named_modules())
    for p in pairs:
        conv, bn = modules[p.conv], modules[p.norm]
        folded = fuse_conv_bn_eval(conv, bn, transpose=p.transpose)  # keeps channels_last
        for name, new in ((p.conv, folded), (p.norm, nn.Identity())):
            parent_name, _, key = name.rpartition(".")
            parent = modules[parent_name] if parent_name else network
            undo.append((parent, key, getattr(parent, key)))
            setattr(parent, key, new)


def outputs_close(before: tuple[Tensor, Tensor], after: tuple[Tensor, Tensor]) -> bool:
    """Whether ``after`` (coords, confidence) is finite and within :data:`TOLERANCE_PX` and
    :data:`TOLERANCE_CONFIDENCE` of ``before``."""
    (c0, p0), (c1, p1) = before, after
    if not (torch.isfinite(c1).all() and torch.isfinite(p1).all()):
        return False
    dc = float((c0.float() - c1.float()).abs().max()) if c0.numel() else 0.0
    dp = float((p0.float() - p1.float()).abs().max()) if p0.numel() else 0.0
    return dc <= TOLERANCE_PX and dp <= TOLERANCE_CONFIDENCE

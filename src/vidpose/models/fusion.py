"""Convolutions fused with the ReLU, and the residual sum, that follow them: prediction on a GPU.

Once batch normalisation is folded (:mod:`vidpose.models.folding`), a ResNet is a chain of
``relu(conv(x) + bias)`` and, at the end of each block, ``relu(conv(x) + bias + identity)``.
Run op by op, each ReLU and each sum reads and writes a whole activation again: memory traffic
that costs as much as the convolutions themselves at this network's size. cuDNN computes both
patterns in one kernel (``torch.cudnn_convolution_relu`` and ``torch.cudnn_convolution_add_relu``,
PyTorch's own operators). Measured on an H200, ResNet-50 trunk at 256x256, bf16, channels-last,
one captured graph per batch (``.probe/fuse.py``, session 18): 20,129 images/s fused against
10,336 folded but unfused at batch 64; 22,584 against 10,646 at batch 256.

The patterns are found with ``torch.fx``: each outermost ``nn.Sequential`` of the network (a
ResNet stage, a head's block) is traced, and where a ``nn.Conv2d``'s output goes only into a
ReLU, or only into a sum whose only use is a ReLU, the three become one call of
:func:`conv_relu` or :func:`conv_add_relu`. Only the traced containers are replaced, by their
graph modules, which keep the parameter names (a state dict loads into them as before). Like the
folding, the fusion is checked: the fused network must give the same outputs on a probe input
in float32, or every container is put back.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidpose.models.folding import outputs_close, restore

_ADDS = (operator.add, operator.iadd, torch.add)
_RELU_FUNCTIONS = (torch.relu, torch.relu_, F.relu)


def conv_relu(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
) -> Tensor:
    """``relu(conv2d(x, weight, bias))``, in one cuDNN kernel on a GPU, in the autocast
    precision when autocast is on (the operator has no autocast rule of its own)."""
    if not x.is_cuda:
        return F.relu(F.conv2d(x, weight, bias, stride, padding, dilation, groups))
    dtype = _compute_dtype(x)
    return torch.cudnn_convolution_relu(
        x.to(dtype), weight.to(dtype), _cast(bias, dtype), stride, padding, dilation, groups
    )


def conv_add_relu(
    x: Tensor,
    weight: Tensor,
    z: Tensor,
    bias: Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
) -> Tensor:
    """``relu(conv2d(x, weight, bias) + z)``, in one cuDNN kernel on a GPU."""
    if not x.is_cuda:
        return F.relu(F.conv2d(x, weight, bias, stride, padding, dilation, groups) + z)
    dtype = _compute_dtype(x)
    return torch.cudnn_convolution_add_relu(
        x.to(dtype),
        weight.to(dtype),
        z.to(dtype),
        1.0,
        _cast(bias, dtype),
        stride,
        padding,
        dilation,
        groups,
    )


def _compute_dtype(x: Tensor) -> torch.dtype:
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _cast(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else t.to(dtype)


def fuse_conv_relu(
    network: nn.Module,
    probe: Tensor,
    forward: Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]],
) -> list[str]:
    """Fuse, in place, each convolution of ``network`` (in eval mode) with the ReLU, or the
    sum and ReLU, after it; the names of the fused convolutions. [] and the network as it was
    when nothing fuses, when the fused network's outputs differ on ``probe`` (float32, TF32
    off) or when it cannot run (the fusion is only a speed-up).

    Args:
        network: the network, in eval mode, float32, its normalisations folded.
        probe: an input for ``forward``, on the network's device.
        forward: ``(network, probe) -> (coords, confidence)``.
    """
    if network.training:
        raise ValueError("fuse_conv_relu needs a network in eval mode")
    undo: list[tuple[nn.Module, str, nn.Module]] = []
    with torch.no_grad(), exact_float32():
        try:
            before = forward(network, probe)
        except Exception:  # nothing changed yet
            return []
        fused: list[str] = []
        try:
            for name, parent, key, container in _outermost_sequentials(network):
                graph = _fused_graph(container)
                if graph is None:
                    continue
                module, sites = graph
                undo.append((parent, key, container))
                setattr(parent, key, module)
                fused += [f"{name}.{s}" if name else s for s in sites]
            same = bool(fused) and outputs_close(before, forward(network, probe))
        except Exception:
            same = False
    if not same:
        restore(undo)
        return []
    return fused


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """TF32 off inside: the folding and fusion checks compare float32 outputs at a float32
    tolerance."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _outermost_sequentials(
    network: nn.Module,
) -> Iterator[tuple[str, nn.Module, str, nn.Sequential]]:
    """(name, parent, attribute, container) of each ``nn.Sequential`` not inside another."""

    def walk(module: nn.Module, prefix: str) -> Iterator[Any]:
        for key, child in list(module.named_children()):
            name = f"{prefix}.{key}" if prefix else key
            if type(child) is nn.Sequential:
                yield name, module, key, child
            else:
                yield from walk(child, name)

    yield from walk(network, "")


def _fused_graph(container: nn.Sequential) -> tuple[torch.fx.GraphModule, list[str]] | None:
    """The container traced with its fusable patterns rewritten, and the fused convolutions'
    names in it; None when it cannot be traced or nothing fuses."""
    try:
        gm = torch.fx.symbolic_trace(container)
    except Exception:  # data-dependent control flow, say: left as it is
        return None
    modules = dict(gm.named_modules())
    graph = gm.graph
    for node in list(graph.nodes):  # the folded norms' placeholders stand between the pairs
        if node.op == "call_module" and type(modules.get(node.target)) is nn.Identity:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    sites: list[str] = []
    for node in list(graph.nodes):
        if not _is_relu(node, modules):
            continue
        src = node.args[0]
        conv, z = _conv_feeding(src, modules), None
        if conv is None and _is_add(src) and len(src.users) == 1:
            a, b = src.args[:2]
            for c, other in ((a, b), (b, a)):
                if _conv_feeding(c, modules) is not None and isinstance(other, torch.fx.Node):
                    conv, z = c, other
                    break
        if conv is None:
            continue
        m = modules[conv.target]
        common = (list(m.stride), list(m.padding), list(m.dilation), m.groups)
        with graph.inserting_before(node):
            w = graph.get_attr(f"{conv.target}.weight")
            b = graph.get_attr(f"{conv.target}.bias") if m.bias is not None else None
            if z is None:
                new = graph.call_function(conv_relu, (conv.args[0], w, b, *common))
            else:
                new = graph.call_function(conv_add_relu, (conv.args[0], w, z, b, *common))
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        if z is not None:
            graph.erase_node(src)
        graph.erase_node(conv)
        sites.append(str(conv.target))
    if not sites:
        return None
    graph.lint()
    gm.recompile()
    return gm, sites


def _conv_feeding(node: Any, modules: dict[str, nn.Module]) -> torch.fx.Node | None:
    """``node`` if it is a plain ``nn.Conv2d`` call (zero padding, numeric) used only once."""
    if not isinstance(node, torch.fx.Node) or node.op != "call_module" or len(node.users) != 1:
        return None
    m = modules.get(node.target)
    if type(m) is not nn.Conv2d or m.padding_mode != "zeros" or isinstance(m.padding, str):
        return None
    return node if len(node.args) == 1 and not node.kwargs else None


def _is_relu(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if not node.args or not isinstance(node.args[0], torch.fx.Node):
        return False
    if node.op == "call_module":
        return type(modules.get(node.target)) is nn.ReLU
    if node.op == "call_function":
        return node.target in _RELU_FUNCTIONS and len(node.args) == 1
    return node.op == "call_method" and node.target in ("relu", "relu_") and len(node.args) == 1


def _is_add(node: Any) -> bool:
    return (
        isinstance(node, torch.fx.Node)
        and node.op == "call_function"
        and node.target in _ADDS
        and len(node.args) == 2
        and not node.kwargs
    )

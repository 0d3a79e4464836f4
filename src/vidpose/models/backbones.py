"""Backbone registry: ImageNet CNNs from torchvision behind one interface.

Every backbone is a :class:`Backbone`: a chain of stages, each ending at a known stride. It takes
ImageNet-normalised images ``(B, 3, H, W)`` and returns features ``(B, channels, H/stride,
W/stride)`` (``stride`` is 32 for all built-in backbones), so any head fits any backbone.
:meth:`Backbone.forward_intermediates` also returns the stride-4/8/16 stage outputs, for heads
that want higher-resolution features (none of the built-in heads do yet).

The registry is the single source of the allowed names, their help text (the builder's
docstring) and metadata (stride, channels, family): ``BACKBONES.names()``,
``vidpose list backbones``, ``BACKBONES.get(name)``. The built-in entries are defined in this
module, so importing it is enough to see all of them.

How to add a backbone::

    @register_backbone("my_net", stride=32, channels=640, family="mynet")
    def _my_net(pretrained: bool) -> Backbone:
        \"\"\"One line of help shown by ``backbone_help()``.\"\"\"
        net = _torchvision_model("my_net", "my_net", pretrained)  # or build it yourself
        return Backbone([net.stem, net.stage2, net.stage3, net.stage4], strides=[4, 8, 16, 32],
                        channels=[80, 160, 320, 640])

The registry-driven tests in ``tests/models`` then give it a forward + backward test and check
that the declared stride and channels match what it really outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from vidpose.errors import ConfigError
from vidpose.models.resnet import ResNet
from vidpose.registry import Registry, first_line

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel RGB mean of ImageNet, for images in [0, 1]."""

IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel RGB standard deviation of ImageNet, for images in [0, 1]."""


def normalize_imagenet(images: Tensor) -> Tensor:
    """Standardise RGB images with the ImageNet statistics the backbones were trained with.

    Args:
        images: (B, 3, H, W) float RGB in [0, 1], any memory format.

    Returns:
        (B, 3, H, W) ``(images - mean) / std``, same dtype, device and memory format.
    """
    key = (str(images.device), images.dtype)
    stats = _IMAGENET_ON.get(key)
    if stats is None:  # once per device and dtype: a host-to-device copy blocks the CPU
        mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype).to(images.device)
        std = torch.tensor(IMAGENET_STD, dtype=images.dtype).to(images.device)
        stats = _IMAGENET_ON[key] = (mean.view(1, 3, 1, 1), std.view(1, 3, 1, 1))
    return (images - stats[0]) / stats[1]


_IMAGENET_ON: dict[tuple[str, torch.dtype], tuple[Tensor, Tensor]] = {}


class Backbone(nn.Module):
    """A feature extractor made of stages that each end at a known stride.

    Attributes:
        name: registry name (set by :func:`build_backbone`).
        stride: output stride of :meth:`forward` (input pixels per feature cell).
        channels: channels of :meth:`forward`'s output.
        feature_info: stride -> channels of every stage output, in order.
    """

    def __init__(
        self, stages: Sequence[nn.Module], strides: Sequence[int], channels: Sequence[int]
    ) -> None:
        super().__init__()
        if not (len(stages) == len(strides) == len(channels)) or not stages:
            raise ValueError("stages, strides and channels must be non-empty and equally long")
        self.name = ""
        self.stages = nn.ModuleList(stages)
        self.feature_info: dict[int, int] = dict(zip(strides, channels))
        self.stride = int(strides[-1])
        self.channels = int(channels[-1])

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) ImageNet-normalised -> (B, channels, H/stride, W/stride)."""
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_intermediates(self, x: Tensor) -> dict[int, Tensor]:
        """Every stage output, keyed by stride.

        Args:
            x: (B, 3, H, W) ImageNet-normalised images.

        Returns:
            stride -> (B, feature_info[stride], H/stride, W/stride), e.g. keys 4, 8, 16, 32;
            the last entry equals :meth:`forward`'s output.
        """
        out: dict[int, Tensor] = {}
        for stage, stride in zip(self.stages, self.feature_info):
            x = stage(x)
            out[stride] = x
        return out


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: how to build it and what it outputs.

    Attributes:
        name: registry name, as written in configs.
        builder: ``builder(pretrained) -> Backbone``.
        stride: output stride of the built backbone.
        channels: output channels of the built backbone.
        family: architecture family (``resnet``, ``efficientnet``, ``convnext``...).
        help: one line describing it (first line of the builder's docstring).
    """

    name: str
    builder: Callable[[bool], Backbone]
    stride: int
    channels: int
    family: str
    help: str


BACKBONES: Registry[BackboneSpec] = Registry(
    "backbone",
    key="model.backbone",
    columns=lambda s: f"{s.family:<13} stride {s.stride:<3} channels {s.channels:<5}",
)


def register_backbone(
    name: str, *, stride: int, channels: int, family: str
) -> Callable[[Callable[[bool], Backbone]], Callable[[bool], Backbone]]:
    """Decorator registering ``builder(pretrained: bool) -> Backbone`` under ``name``."""

    def deco(builder: Callable[[bool], Backbone]) -> Callable[[bool], Backbone]:
        BACKBONES.add(
            BackboneSpec(name, builder, stride, channels, family, first_line(builder.__doc__))
        )
        return builder

    return deco


def build_backbone(name: str, pretrained: bool = False) -> Backbone:
    """Build the backbone registered under ``name``.

    Args:
        name: a name in :data:`BACKBONES`.
        pretrained: load ImageNet weights (from the torch hub cache, downloading them if
            needed); raises ConfigError when they cannot be had.

    Returns:
        The backbone, with ``stride`` and ``channels`` as registered.
    """
    spec = BACKBONES.get(name)
    backbone = spec.builder(pretrained)
    backbone.name = spec.name
    return backbone


# Loading torchvision weights fails in many ways without internet or with a bad cache file
# (URLError/HTTPError are OSErrors; hash mismatches and truncated files raise RuntimeError, ...).
_LOAD_ERRORS = (OSError, RuntimeError, ValueError, EOFError, ImportError)


DOWNLOAD_TIMEOUT_S = 5.0
"""How long the weights' server may take to accept a connection before vidpose gives up."""


def _reachable(url: str) -> None:
    """Raise OSError unless ``url``'s host accepts a TCP connection within the timeout (a
    machine without internet, or behind a firewall that drops packets, would otherwise wait
    for urllib's own, much longer, timeouts)."""
    import socket

    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname, port), timeout=DOWNLOAD_TIMEOUT_S):
        pass


def _torchvision_model(registry_name: str, tv_name: str, pretrained: bool) -> nn.Module:
    """``torchvision.models.<tv_name>``, with its default ImageNet weights if ``pretrained``.

    Raises:
        ConfigError: the weights are neither in the torch hub cache nor downloadable; the
            message says where to put the file, or to set ``model.pretrained=false``.
    """
    # Imported here, not at the top: torchvision's import pulls in torch._dynamo (seconds),
    # which commands that never build a network (check, smooth, label-video) should not pay.
    import torchvision

    ctor = getattr(torchvision.models, tv_name)
    if not pretrained:
        return ctor(weights=None)
    weights = torchvision.models.get_model_weights(tv_name).DEFAULT
    filename = Path(urlparse(weights.url).path).name
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        if not (cache / filename).exists():
            _reachable(weights.url)  # offline: fail in seconds, not after minutes of retries
        return ctor(weights=weights)
    except _LOAD_ERRORS as exc:
        raise ConfigError(
            f"model.backbone={registry_name}: could not load the ImageNet weights {weights} "
            f"({type(exc).__name__}: {exc}). Either set model.pretrained=false to train from "
            f"scratch, or pre-cache the weights: download {weights.url} on a machine with "
            f"internet and save it as {cache / filename} (the torch hub cache, "
            f"torch.hub.get_dir()/checkpoints; set TORCH_HOME to move it)."
        ) from exc


def _resnet(registry_name: str, pretrained: bool, channels: Sequence[int]) -> Backbone:
    # vidpose's own ResNet (torchvision's parameters and initialisation, without importing
    # torchvision: see models/resnet.py); torchvision only to fetch ImageNet weights.
    if not pretrained:
        net = ResNet(registry_name)
    else:
        weights = _torchvision_model(registry_name, registry_name, True).state_dict()
        with torch.random.fork_rng(devices=[]):  # the weights are overwritten: draw nothing
            net = ResNet(registry_name)
        net.load_state_dict(weights)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
    return Backbone([stem, net.layer2, net.layer3, net.layer4], [4, 8, 16, 32], channels)


@register_backbone("resnet18", stride=32, channels=512, family="resnet")
def _resnet18(pretrained: bool) -> Backbone:
    """ResNet-18 (11 M parameters): fastest; a good default for small projects."""
    return _resnet("resnet18", pretrained, [64, 128, 256, 512])


@register_backbone("resnet34", stride=32, channels=512, family="resnet")
def _resnet34(pretrained: bool) -> Backbone:
    """ResNet-34 (21 M parameters)."""
    return _resnet("resnet34", pretrained, [64, 128, 256, 512])


@register_backbone("resnet50", stride=32, channels=2048, family="resnet")
def _resnet50(pretrained: bool) -> Backbone:
    """ResNet-50 (24 M parameters): the usual pose-estimation backbone."""
    return _resnet("resnet50", pretrained, [256, 512, 1024, 2048])


@register_backbone("resnet101", stride=32, channels=2048, family="resnet")
def _resnet101(pretrained: bool) -> Backbone:
    """ResNet-101 (43 M parameters)."""
    return _resnet("resnet101", pretrained, [256, 512, 1024, 2048])


def _efficientnet(registry_name: str, pretrained: bool, channels: Sequence[int]) -> Backbone:
    f = _torchvision_model(registry_name, registry_name, pretrained).features
    # features[0:3] end at stride 4, [3] at 8, [4:6] at 16, [6:9] (incl. the 1x1 head) at 32.
    stages = [f[0:3], f[3], f[4:6], f[6:9]]
    return Backbone(stages, [4, 8, 16, 32], channels)


@register_backbone("efficientnet_b0", stride=32, channels=1280, family="efficientnet")
def _efficientnet_b0(pretrained: bool) -> Backbone:
    """EfficientNet-B0 (4 M parameters): light, for CPU or many-video inference."""
    return _efficientnet("efficientnet_b0", pretrained, [24, 40, 112, 1280])


@register_backbone("efficientnet_b1", stride=32, channels=1280, family="efficientnet")
def _efficientnet_b1(pretrained: bool) -> Backbone:
    """EfficientNet-B1 (6.5 M parameters)."""
    return _efficientnet("efficientnet_b1", pretrained, [24, 40, 112, 1280])


@register_backbone("efficientnet_b2", stride=32, channels=1408, family="efficientnet")
def _efficientnet_b2(pretrained: bool) -> Backbone:
    """EfficientNet-B2 (7.7 M parameters)."""
    return _efficientnet("efficientnet_b2", pretrained, [24, 48, 120, 1408])


@register_backbone("convnext_tiny", stride=32, channels=768, family="convnext")
def _convnext_tiny(pretrained: bool) -> Backbone:
    """ConvNeXt-Tiny (28 M parameters): modern, strong with pretrained weights."""
    f = _torchvision_model("convnext_tiny", "convnext_tiny", pretrained).features
    return Backbone([f[0:2], f[2:4], f[4:6], f[6:8]], [4, 8, 16, 32], [96, 192, 384, 768])

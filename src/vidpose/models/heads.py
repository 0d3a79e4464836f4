"""Head registry: backbone features -> keypoint coordinates, confidences and heatmaps.

Every head is a :class:`Head` built as ``build_head(name, in_channels, stride, n_keypoints,
**options)`` and called as ``head(features (B, C, h, w)) -> HeadOutput``, so any head fits any
backbone (see :mod:`vidpose.models.backbones`). Coordinates follow the pixel-centre convention
of :mod:`vidpose.models.heatmaps`, in pixels of the *model input* (H = h * stride,
W = w * stride).

Built-in heads:

* ``heatmap`` (:class:`HeatmapHead`, the default): upsamples the stride-32 features to heatmaps
  at stride 4 (or 2) and decodes them with a windowed soft-argmax.
* ``regression`` (:class:`RegressionHead`): global pooling + MLP straight to coordinates.

How to add a head::

    @register_head("my_head", produces_heatmaps=False)
    class MyHead(Head):
        \"\"\"One line of help shown by ``head_help()``.\"\"\"

        def __init__(self, in_channels: int, stride: int, n_keypoints: int, depth: int = 2):
            super().__init__(in_channels, stride, n_keypoints)
            ...

        def forward(self, features: Tensor) -> HeadOutput: ...

Its keyword options (``depth`` here) become the allowed ``**options`` of :func:`build_head`;
an unknown option is a ConfigError naming the allowed ones. The registry-driven tests in
``tests/models`` give it a forward + backward test with every backbone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from vidpose._device import device_vector
from vidpose.errors import ConfigError
from vidpose.models.heatmaps import DEFAULT_WINDOW_RADIUS, decode_heatmaps
from vidpose.registry import Registry, first_line


@dataclass
class HeadOutput:
    """What every head returns for a batch of B images and K keypoints.

    Attributes:
        coords: (B, K, 2) float32 x, y in model-input pixels (pixel-centre convention).
        confidence: (B, K) float32 in [0, 1].
        heatmaps: (B, K, h, w) heatmap logits (the autocast dtype under autocast), or None for
            heads without heatmaps. Cell j is centred on input pixel
            ``heatmap_stride * j + (heatmap_stride - 1) / 2``.
        heatmap_stride: input pixels per heatmap cell, None when ``heatmaps`` is None.
    """

    coords: Tensor
    confidence: Tensor
    heatmaps: Tensor | None = None
    heatmap_stride: int | None = None


class Head(nn.Module):
    """Base class of heads: ``forward(features (B, in_channels, h, w)) -> HeadOutput``.

    Attributes:
        in_channels: channels of the backbone features it takes.
        stride: backbone stride (input pixels per feature cell).
        n_keypoints: K.
        heatmap_stride: stride of the heatmaps it emits, None if it emits none.
    """

    heatmap_stride: int | None = None
    multiscale: bool = False
    """True for heads that take every backbone stage (``{stride: (B, C_s, h_s, w_s)}``)."""

    def __init__(self, in_channels: int, stride: int, n_keypoints: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.stride = stride
        self.n_keypoints = n_keypoints

    def forward(self, features: Tensor) -> HeadOutput:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class HeadSpec:
    """A registered head.

    Attributes:
        name: registry name, as written in configs.
        cls: the Head subclass.
        produces_heatmaps: whether its outputs carry heatmaps (heatmap losses need them).
        options: names of its keyword options beyond (in_channels, stride, n_keypoints), with
            their defaults.
        help: one line describing it (first line of the class docstring).
    """

    name: str
    cls: type[Head]
    produces_heatmaps: bool
    options: dict[str, Any]
    help: str


def _head_columns(s: HeadSpec) -> str:
    opts = ", ".join(f"{k}={v!r}" for k, v in s.options.items() if k not in _FILLED_IN)
    return f"heatmaps: {'yes' if s.produces_heatmaps else 'no ':<4} options: {opts or 'none'}"


HEADS: Registry[HeadSpec] = Registry(
    "head", key="model.head", modules=("vidpose.models.context",), columns=_head_columns
)
_BASE_ARGS = ("self", "in_channels", "stride", "n_keypoints")
# Options that build_network fills in from the backbone and the config, not the user.
_FILLED_IN = ("heatmap_stride", "feature_channels")
H = TypeVar("H", bound=type[Head])


def register_head(name: str, *, produces_heatmaps: bool) -> Callable[[H], H]:
    """Class decorator registering a :class:`Head` subclass under ``name``."""

    def deco(cls: H) -> H:
        params = inspect.signature(cls.__init__).parameters
        options = {p: v.default for p, v in params.items() if p not in _BASE_ARGS}
        HEADS.add(HeadSpec(name, cls, produces_heatmaps, options, first_line(cls.__doc__)))
        return cls

    return deco


def build_head(name: str, in_channels: int, stride: int, n_keypoints: int, **options: Any) -> Head:
    """Build the head registered under ``name``.

    Args:
        name: a name in :data:`HEADS`.
        in_channels: backbone output channels.
        stride: backbone output stride.
        n_keypoints: K.
        **options: the head's own options (``vidpose list heads``); unknown ones are a
            ConfigError naming the allowed ones.
    """
    spec = HEADS.get(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ConfigError(
            f"model.head={name}: unknown option(s) {unknown}; allowed: {sorted(spec.options)}"
        )
    if n_keypoints < 1:
        raise ConfigError(f"model.head={name}: n_keypoints must be >= 1, got {n_keypoints}")
    return spec.cls(in_channels, stride, n_keypoints, **options)


def upsampling_ratio(stride: int, heatmap_stride: int) -> int:
    """stride / heatmap_stride, checked to be a power of two (ConfigError naming the key)."""
    ratio = stride // heatmap_stride if heatmap_stride > 0 else 0
    if ratio < 1 or ratio * heatmap_stride != stride or ratio & (ratio - 1):
        raise ConfigError(
            f"model.heatmap_stride={heatmap_stride}: must be a power of two dividing the "
            f"backbone stride {stride} (e.g. 2 or 4)"
        )
    return ratio


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    # kernel 4 / stride 2 / padding 1 doubles the size exactly and is symmetric, so cell j of
    # the input stays centred between output cells 2j and 2j + 1, as the coordinate
    # convention needs; an even kernel also avoids the checkerboard of kernel 3.
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@register_head("heatmap", produces_heatmaps=True)
class HeatmapHead(Head):
    """Deconvolution heatmap head: 1x1 reduce, then x2 ConvTranspose+BN+ReLU blocks to K maps.

    Design: a 1x1 conv + BN + ReLU maps the backbone's C channels (512..2048) to ``width``
    (256), then ``log2(stride / heatmap_stride)`` blocks of ConvTranspose2d(4, stride 2) + BN +
    ReLU double the resolution while halving the channels (floor ``min_width``): 256 -> 128 ->
    64 -> 32 cells at stride 4, + one 32-channel block for stride 2. A 1x1 conv (times
    ``logit_scale``) gives the K logit maps. For a 256 x 256 input and heatmap stride 4 this
    costs ~0.1 GMAC (ResNet-50: ~5.4) and uses only conv/BN/ReLU, which run well in bf16 and
    channels_last.

    Decoding (see :mod:`vidpose.models.heatmaps`): spatial softmax of the logits with inverse
    temperature ``beta`` (1 = how the losses train them), then soft-argmax in a box of
    half-width ``decode_radius`` cells re-centred on the estimate; confidence is the softmax
    mass inside that box.

    Args:
        in_channels, stride, n_keypoints: see :class:`Head`.
        heatmap_stride: input pixels per heatmap cell; a power of two dividing ``stride``,
            normally 4 (fast) or 2 (finer, 4x the heatmap memory).
        width: channels after the 1x1 reduction.
        min_width: fewest channels in an upsampling block.
        beta: inverse temperature of the decoding softmax.
        decode_radius: soft-argmax / confidence box half-width, in heatmap cells; keep it
            >= ~2.5 x the target sigma.
        logit_scale: fixed factor on the final conv's output. A sharp Gaussian needs logits
            spanning tens (log-ratio d**2 / 2 sigma**2 between peak and background); the
            factor lets the small final layer reach them quickly. Measured on synthetic dots
            (ResNet-50 from scratch, 256 px, 16 images, AdamW 1e-3, KL loss, bf16): with 10,
            training error < 1 px after 100 steps in all 6 runs; with 1, one run in three
            was still ~50 px off after 300 steps. It speeds up the MSE loss likewise.
    """

    def __init__(
        self,
        in_channels: int,
        stride: int,
        n_keypoints: int,
        heatmap_stride: int = 4,
        width: int = 256,
        min_width: int = 32,
        beta: float = 1.0,
        decode_radius: int = DEFAULT_WINDOW_RADIUS,
        logit_scale: float = 10.0,
    ) -> None:
        super().__init__(in_channels, stride, n_keypoints)
        ratio = upsampling_ratio(stride, heatmap_stride)
        if decode_radius < 1:
            raise ConfigError(f"model.decode_radius={decode_radius}: must be >= 1 heatmap cell")
        self.heatmap_stride = heatmap_stride
        self.beta = beta
        self.decode_radius = decode_radius
        self.logit_scale = logit_scale
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, kernel_size=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        c = width
        for _ in range(ratio.bit_length() - 1):
            c_out = max(c // 2, min_width)
            layers.append(_up_block(c, c_out))
            c = c_out
        self.decoder = nn.Sequential(*layers)
        self.final = nn.Conv2d(c, n_keypoints, kernel_size=1)
        # Small weights start every map near-uniform (confidence ~0), not at a random peak.
        nn.init.normal_(self.final.weight, std=1e-3)
        nn.init.zeros_(self.final.bias)

    def forward(self, features: Tensor) -> HeadOutput:
        """(B, in_channels, h, w) -> HeadOutput with heatmaps (B, K, h*r, w*r), r = stride/hs."""
        logits = self.final(self.decoder(features)) * self.logit_scale
        coords, confidence = decode_heatmaps(
            logits, self.heatmap_stride, beta=self.beta, radius=self.decode_radius
        )
        return HeadOutput(coords, confidence, logits, self.heatmap_stride)


@register_head("heatmap_fpn", produces_heatmaps=True)
class MultiScaleHeatmapHead(Head):
    """Heatmap head with skip connections from the stride-16/8/4 backbone stages (FPN-style).

    Design: the last stage is reduced to ``width`` channels, then, once per halving of the
    stride down to ``heatmap_stride``, upsampled x2 (nearest), added to a 1x1 projection of the
    backbone stage at that stride (where there is one) and refined by a 3x3 conv + BN + ReLU.
    Fine stages carry the precise position of small parts (paws, ears) that the stride-32
    features have blurred away, so heatmaps get sharp after fewer steps than from the last
    stage alone (:class:`HeatmapHead`). Cost at 256 x 256, stride 4: ~0.5 GMAC on top of the
    backbone. Decoding and confidence are the same as :class:`HeatmapHead`.

    Args:
        in_channels, stride, n_keypoints: see :class:`Head`.
        heatmap_stride: input pixels per heatmap cell (2 or 4).
        feature_channels: stride -> channels of each backbone stage (``backbone.feature_info``;
            filled in by :func:`vidpose.models.build_network`).
        width: channels of the decoder.
        beta, decode_radius, logit_scale: as in :class:`HeatmapHead`.
    """

    multiscale = True

    def __init__(
        self,
        in_channels: int,
        stride: int,
        n_keypoints: int,
        heatmap_stride: int = 4,
        feature_channels: dict[int, int] | None = None,
        width: int = 128,
        beta: float = 1.0,
        decode_radius: int = DEFAULT_WINDOW_RADIUS,
        logit_scale: float = 10.0,
    ) -> None:
        super().__init__(in_channels, stride, n_keypoints)
        upsampling_ratio(stride, heatmap_stride)
        feature_channels = dict(feature_channels or {stride: in_channels})
        self.heatmap_stride = heatmap_stride
        self.beta = beta
        self.decode_radius = decode_radius
        self.logit_scale = logit_scale
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.levels: list[int] = []
        self.lateral = nn.ModuleDict()
        self.refine = nn.ModuleDict()
        s = stride
        while s > heatmap_stride:
            s //= 2
            self.levels.append(s)
            if s in feature_channels:
                self.lateral[str(s)] = nn.Conv2d(feature_channels[s], width, kernel_size=1)
            self.refine[str(s)] = nn.Sequential(
                nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            )
        self.final = nn.Conv2d(width, n_keypoints, kernel_size=1)
        nn.init.normal_(self.final.weight, std=1e-3)
        nn.init.zeros_(self.final.bias)

    def forward(self, features: dict[int, Tensor] | Tensor) -> HeadOutput:
        """Backbone stages ``{stride: (B, C_s, H/s, W/s)}`` (or the last stage alone)."""
        if isinstance(features, Tensor):
            features = {self.stride: features}
        x = self.reduce(features[self.stride])
        for s in self.levels:
            x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
            lateral = self.lateral[str(s)] if str(s) in self.lateral else None  # noqa: SIM401
            if lateral is not None and s in features:
                x = x + lateral(features[s])
            x = self.refine[str(s)](x)
        logits = self.final(x) * self.logit_scale
        coords, confidence = decode_heatmaps(
            logits, self.heatmap_stride, beta=self.beta, radius=self.decode_radius
        )
        return HeadOutput(coords, confidence, logits, self.heatmap_stride)


@register_head("regression", produces_heatmaps=False)
class RegressionHead(Head):
    """Direct regression: global average pooling + MLP to normalised coordinates.

    The MLP outputs ``u`` in normalised image coordinates (-1 = left/top edge of the image,
    +1 = right/bottom edge, the ``grid_sample(align_corners=False)`` convention), mapped to pixels
    by ``x = (u + 1) / 2 * W - 0.5``. The last layer starts near zero, so every keypoint starts
    near the image centre. Confidence is a constant 1: nothing in a pooled regression says how sure
    it is, and an untrained learned logit would only look like one.

    Args:
        in_channels, stride, n_keypoints: see :class:`Head`.
        hidden: width of the MLP's hidden layer.
    """

    def __init__(self, in_channels: int, stride: int, n_keypoints: int, hidden: int = 256) -> None:
        super().__init__(in_channels, stride, n_keypoints)
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 2 * n_keypoints),
        )
        # Tiny (not zero) weights: start at the centre yet let gradients reach the backbone.
        nn.init.normal_(self.mlp[-1].weight, std=1e-4)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, features: Tensor) -> HeadOutput:
        """(B, in_channels, h, w) -> HeadOutput, heatmaps None; input size is (h, w) * stride."""
        b, _, h, w = features.shape
        u = self.mlp(features.mean(dim=(-2, -1))).float().view(b, self.n_keypoints, 2)
        size = device_vector((w * self.stride, h * self.stride), u)
        coords = (u + 1.0) / 2.0 * size - 0.5
        confidence = torch.ones(b, self.n_keypoints, device=u.device, dtype=torch.float32)
        return HeadOutput(coords, confidence, None, None)

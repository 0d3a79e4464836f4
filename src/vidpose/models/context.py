"""Temporal-context pose network: predict frame t from frames t-h..t+h (W = 2h + 1 frames).

The backbone runs once per frame (:meth:`ContextPoseNetwork.forward_features`, the same as
:class:`~vidpose.models.network.PoseNetwork`). :class:`ContextHeatmapHead` then holds two FPN
heatmap decoders:

* a *single-frame* decoder on the centre frame's own multiscale features, and
* a *context* decoder on features that a temporal module mixes from all W frames: per backbone
  stride, the W frames' feature maps are stacked on the channel axis and a 1x1 convolution maps
  them back to that stage's channels. It starts as "copy the centre frame" (identity on the
  centre block, zero elsewhere), so an untrained context head equals the single-frame one and
  learns how much to borrow from the neighbours.

Both decoders are trained (the sum of their supervised losses). At prediction every keypoint
takes the coordinates, confidence and heatmap of whichever decoder is more confident about it
(:func:`select_more_confident`; the context decoder wins ties).

:class:`ContextPoseNetwork` implements the network interface of
:mod:`vidpose.models.network` (``W`` = ``context_frames``; images float RGB in [0, 1])::

    net = build_network("resnet18", "heatmap_context", n_keypoints=K, context_frames=5)
    both = net.forward_windows(frames)         # frames (B, W, 3, H, W_img) -> ContextOutput
    feats = net.forward_features(images)       # images (N, 3, H, W_img) -> {stride: (N, C, h, w)}
    both = net.forward_from_features(window)   # window: W feature dicts of B frames each
    both = net.forward_sequence(feats)         # N consecutive frames -> N - W + 1 centres

A :class:`ContextOutput` is a :class:`~vidpose.models.network.NetworkOutput` whose decoders are
``[single, context]``. ``net(images)`` with 4-D images runs the single-frame decoder alone, so
the head also fits the registry-wide single-image tests; ``net.forward_images(images)`` gives
each unrelated image its own edge-padded window.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vidpose.errors import ConfigError
from vidpose.models.heads import HeadOutput, MultiScaleHeatmapHead, register_head
from vidpose.models.heatmaps import DEFAULT_WINDOW_RADIUS
from vidpose.models.network import NetworkOutput, PoseNetwork, slice_features

Features = dict[int, Tensor]


class ContextOutput(NetworkOutput):
    """Both decoders' outputs for B centre frames, and the per-keypoint selection.

    Attributes:
        single: the single-frame decoder's output (centre frame only).
        context: the context decoder's output (all W frames).
        combined: per keypoint, the more confident of the two (see :func:`select_more_confident`).
    """

    def __init__(self, single: HeadOutput, context: HeadOutput, combined: HeadOutput) -> None:
        super().__init__([single, context], combined)

    @property
    def single(self) -> HeadOutput:
        return self.decoders[0]

    @property
    def context(self) -> HeadOutput:
        return self.decoders[1]


def select_more_confident(single: HeadOutput, context: HeadOutput) -> HeadOutput:
    """Per keypoint, the output (coords, confidence, heatmap) of the more confident head.

    ``context`` wins ties. Both outputs must have the same shapes (B, K, ...).
    """
    use_ctx = context.confidence >= single.confidence  # (B, K)
    coords = torch.where(use_ctx[..., None], context.coords, single.coords)
    conf = torch.where(use_ctx, context.confidence, single.confidence)
    heatmaps = None
    if single.heatmaps is not None and context.heatmaps is not None:
        heatmaps = torch.where(use_ctx[..., None, None], context.heatmaps, single.heatmaps)
    return HeadOutput(coords, conf, heatmaps, context.heatmap_stride)


def _as_dict(features: Features | Tensor, stride: int) -> Features:
    return {stride: features} if isinstance(features, Tensor) else features


@register_head("heatmap_context", produces_heatmaps=True)
class ContextHeatmapHead(MultiScaleHeatmapHead):
    """Temporal-context heatmaps: FPN decoders on the centre frame and on W mixed frames.

    The single-frame decoder is this class's own :class:`MultiScaleHeatmapHead` weights
    (``forward`` on one frame's features; same parameter names as ``heatmap_fpn``, so a
    single-frame model's head can initialise it); ``context_decoder`` is a second FPN decoder
    fed by ``temporal`` (one 1x1 conv per backbone stride over the W frames' stacked feature
    maps). Cost on top of ``heatmap_fpn``: a second decoder and the 1x1 mixes, once per
    predicted frame; the backbone still runs once per frame.

    Args:
        in_channels, stride, n_keypoints, heatmap_stride, feature_channels, width, beta,
            decode_radius, logit_scale: as in :class:`MultiScaleHeatmapHead`.
        context_frames: W, odd, >= 3 (frames t-(W-1)/2 .. t+(W-1)/2 predict frame t).
    """

    def __init__(
        self,
        in_channels: int,
        stride: int,
        n_keypoints: int,
        heatmap_stride: int = 4,
        feature_channels: dict[int, int] | None = None,
        context_frames: int = 5,
        width: int = 128,
        beta: float = 1.0,
        decode_radius: int = DEFAULT_WINDOW_RADIUS,
        logit_scale: float = 10.0,
    ) -> None:
        super().__init__(
            in_channels,
            stride,
            n_keypoints,
            heatmap_stride,
            feature_channels,
            width,
            beta,
            decode_radius,
            logit_scale,
        )
        if context_frames < 3 or context_frames % 2 == 0:
            raise ConfigError(
                f"model.context_frames={context_frames}: the context head needs an odd number "
                ">= 3 of frames (e.g. 5)"
            )
        self.context_frames = context_frames
        channels = dict(feature_channels or {stride: in_channels})
        self.context_decoder = MultiScaleHeatmapHead(
            in_channels,
            stride,
            n_keypoints,
            heatmap_stride,
            channels,
            width,
            beta,
            decode_radius,
            logit_scale,
        )
        # Only the stages the decoder reads are mixed.
        used = {stride, *(s for s in self.levels if str(s) in self.lateral)}
        self.temporal = nn.ModuleDict()
        centre = context_frames // 2
        for s in sorted(used):
            c = channels[s]
            conv = nn.Conv2d(context_frames * c, c, kernel_size=1)
            with torch.no_grad():
                conv.weight.zero_()
                conv.bias.zero_()
                conv.weight[:, centre * c : (centre + 1) * c, 0, 0] = torch.eye(c)
            self.temporal[str(s)] = conv

    @property
    def half(self) -> int:
        return self.context_frames // 2

    def mix(self, window: Sequence[Features]) -> Features:
        """W frames' features ``{stride: (B, C_s, h_s, w_s)}`` -> the mixed centre features."""
        return {
            int(s): conv(torch.cat([f[int(s)] for f in window], dim=1))
            for s, conv in self.temporal.items()
        }

    def forward_window(self, window: Sequence[Features | Tensor]) -> ContextOutput:
        """Both decoders on W frames' features (oldest first); B centre frames out."""
        if len(window) != self.context_frames:
            raise ValueError(f"expected {self.context_frames} frames' features, got {len(window)}")
        window = [_as_dict(f, self.stride) for f in window]
        single = self(window[self.half])
        context = self.context_decoder(self.mix(window))
        return ContextOutput(single, context, select_more_confident(single, context))


class ContextPoseNetwork(PoseNetwork):
    """A backbone + :class:`ContextHeatmapHead`; see the module docstring for the interface."""

    head: ContextHeatmapHead

    @property
    def context_frames(self) -> int:
        return self.head.context_frames

    def forward_from_features(self, window: Sequence[Features | Tensor]) -> ContextOutput:
        """W per-frame feature dicts (each ``{stride: (B, C_s, h, w)}``, oldest first)."""
        return self.head.forward_window(window)

    def forward_window_features(self, features: Features | Tensor, b: int) -> ContextOutput:
        feats = _as_dict(features, self.stride)
        w = self.context_frames
        window = [{s: f.unflatten(0, (b, w))[:, k] for s, f in feats.items()} for k in range(w)]
        return self.forward_from_features(window)

    def forward_windows(self, windows: Tensor) -> ContextOutput:
        out = super().forward_windows(windows)
        assert isinstance(out, ContextOutput)
        return out

    def forward_sequence(self, features: Features | Tensor, views: int = 1) -> ContextOutput:
        """Features of N consecutive frames -> outputs for the N - W + 1 full-window centres.

        Centre i of the result is frame ``i + W // 2``; no padding, so a clip's windows share
        the frames they overlap on and predictions have no seams between windows. With
        ``views`` > 1 the features are that many sequences of N / views frames one after
        another (synchronized cameras): each is windowed on its own, and the centres come
        view after view.
        """
        feats = _as_dict(features, self.stride)
        n = next(iter(feats.values())).shape[0] // views
        m = n - self.context_frames + 1
        if m < 1:
            raise ValueError(f"{n} frames are fewer than the {self.context_frames}-frame window")

        def frames(f: Tensor, k: int) -> Tensor:
            if views == 1:
                return f[k : k + m]
            return f.reshape(views, n, *f.shape[1:])[:, k : k + m].flatten(0, 1)

        window = [{s: frames(f, k) for s, f in feats.items()} for k in range(self.context_frames)]
        return self.forward_from_features(window)

    def forward_train(
        self, windows: Tensor, clip: Tensor | None = None
    ) -> tuple[ContextOutput, ContextOutput | None]:
        """Both decoders on B labeled windows and, with a clip of T frames, on its T - W + 1
        full-window centres, from one backbone pass over the B * W + T frames.

        The clip's centres come from overlapping windows of the same per-frame features, so
        consecutive predictions never straddle two separately computed windows.
        """
        self._check_windows(windows)
        b, w = windows.shape[:2]
        frames = windows.flatten(0, 1)
        views = 1
        if clip is not None:
            if clip.ndim == 5:  # (V, T, ...) synchronized cameras
                views, clip = clip.shape[0], clip.flatten(0, 1)
            frames = torch.cat([frames, clip.to(frames.dtype)])
        feats = self.forward_features(frames)
        labeled = self.forward_window_features(slice_features(feats, slice(0, b * w)), b)
        if clip is None:
            return labeled, None
        return labeled, self.forward_sequence(slice_features(feats, slice(b * w, None)), views)

    def forward_images(self, images: Tensor) -> HeadOutput:
        feats = self.forward_features(images)
        return self.forward_from_features([feats] * self.context_frames).combined

    def forward(self, images: Tensor) -> HeadOutput:
        """(B, W, 3, H, W_img) windows -> the combined HeadOutput of the B centre frames;
        (B, 3, H, W_img) single images -> the single-frame decoder's HeadOutput."""
        if images.ndim == 5:
            return self.forward_windows(images).combined
        return super().forward(images)


ContextHeatmapHead.network_cls = ContextPoseNetwork  # type: ignore[attr-defined]


def edge_padded_windows(n_frames: int, context_frames: int) -> Tensor:
    """(n_frames, W) int64 frame indices of each frame's window, clamped to [0, n_frames - 1]."""
    half = context_frames // 2
    t = torch.arange(n_frames)[:, None] + torch.arange(-half, half + 1)[None, :]
    return t.clamp_(0, n_frames - 1)

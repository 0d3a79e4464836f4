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

Interfaces (``W`` = ``context_frames``; images float RGB in [0, 1])::

    net = build_network("resnet18", "heatmap_context", n_keypoints=K, context_frames=5)
    out = net(frames)                          # frames (B, W, 3, H, W_img) -> HeadOutput
    both = net.forward_window(frames)          # -> ContextOutput(single, context, combined)
    feats = net.forward_features(images)       # images (N, 3, H, W_img) -> {stride: (N, C, h, w)}
    both = net.forward_from_features(window)   # window: W feature dicts of B frames each
    both = net.forward_sequence(feats)         # N consecutive frames -> N - W + 1 centres

``net(images)`` with 4-D images runs the single-frame decoder alone, so the head also fits the
registry-wide single-image tests. :class:`SlidingWindow` turns a stream of per-frame features
(video batches) into one prediction per frame, edge-padded at both ends, holding at most
``batch + W - 1`` frames' features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vidpose.errors import ConfigError
from vidpose.models.heads import HeadOutput, MultiScaleHeatmapHead, get_head_spec, register_head
from vidpose.models.heatmaps import DEFAULT_WINDOW_RADIUS
from vidpose.models.network import PoseNetwork

Features = dict[int, Tensor]


@dataclass
class ContextOutput:
    """Both decoders' outputs for B centre frames, and the per-keypoint selection.

    Attributes:
        single: the single-frame decoder's output (centre frame only).
        context: the context decoder's output (all W frames).
        combined: per keypoint, the more confident of the two (see :func:`select_more_confident`).
    """

    single: HeadOutput
    context: HeadOutput
    combined: HeadOutput


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

    def forward_window(self, frames: Tensor) -> ContextOutput:
        """frames (B, W, 3, H, W_img) float RGB in [0, 1] -> outputs for the B centre frames.

        The backbone runs once on all B * W frames.
        """
        if frames.ndim != 5 or frames.shape[1] != self.context_frames:
            raise ValueError(
                f"frames must be (B, {self.context_frames}, 3, H, W), got {tuple(frames.shape)}"
            )
        b, w = frames.shape[:2]
        feats = _as_dict(self.forward_features(frames.flatten(0, 1)), self.stride)
        window = [{s: f.unflatten(0, (b, w))[:, k] for s, f in feats.items()} for k in range(w)]
        return self.forward_from_features(window)

    def forward_sequence(self, features: Features | Tensor) -> ContextOutput:
        """Features of N consecutive frames -> outputs for the N - W + 1 full-window centres.

        Centre i of the result is frame ``i + W // 2``; no padding, so a clip's windows share
        the frames they overlap on and predictions have no seams between windows.
        """
        feats = _as_dict(features, self.stride)
        n = next(iter(feats.values())).shape[0]
        m = n - self.context_frames + 1
        if m < 1:
            raise ValueError(f"{n} frames are fewer than the {self.context_frames}-frame window")
        window = [{s: f[k : k + m] for s, f in feats.items()} for k in range(self.context_frames)]
        return self.forward_from_features(window)

    def forward(self, images: Tensor) -> HeadOutput:
        """(B, W, 3, H, W_img) windows -> the combined HeadOutput of the B centre frames;
        (B, 3, H, W_img) single images -> the single-frame decoder's HeadOutput."""
        if images.ndim == 5:
            return self.forward_window(images).combined
        return super().forward(images)


ContextHeatmapHead.network_cls = ContextPoseNetwork  # type: ignore[attr-defined]


def head_config_options(head: str, **model_fields: Any) -> dict[str, Any]:
    """The ``model`` config fields (e.g. ``context_frames``) that the head ``head`` accepts
    as options, to pass on to :func:`~vidpose.models.build_network`."""
    options = get_head_spec(head).options
    return {k: v for k, v in model_fields.items() if k in options}


def _repeat(features: Features, index: int, times: int) -> Features:
    return {s: f[index : index + 1].expand(times, *f.shape[1:]) for s, f in features.items()}


def _cat(a: Features | None, b: Features) -> Features:
    return b if a is None else {s: torch.cat([a[s], b[s]]) for s in b}


class SlidingWindow:
    """One context prediction per frame from a stream of per-frame features.

    Push the backbone features of consecutive frames in batches (:meth:`push`), then call
    :meth:`finish`. Each call returns the outputs of the frames whose windows became complete,
    in frame order (None if none did). The first and last frames are edge-padded: frames before
    the start repeat frame 0, frames after the end repeat the last frame. At most
    ``batch + W - 1`` frames' features are held, whatever the stream's length.
    """

    def __init__(self, network: ContextPoseNetwork) -> None:
        self.network = network
        self.half = network.context_frames // 2
        self._buf: Features | None = None

    def _emit(self) -> ContextOutput | None:
        assert self._buf is not None
        n = next(iter(self._buf.values())).shape[0]
        if n < 2 * self.half + 1:
            return None
        out = self.network.forward_sequence(self._buf)
        self._buf = {s: f[n - 2 * self.half :] for s, f in self._buf.items()}
        return out

    def push(self, features: Features | Tensor) -> ContextOutput | None:
        """Features ``{stride: (B, C_s, h, w)}`` of the next B frames."""
        features = _as_dict(features, self.network.stride)
        if self._buf is None:
            features = _cat(_repeat(features, 0, self.half), features)
        self._buf = _cat(self._buf, features)
        return self._emit()

    def finish(self) -> ContextOutput | None:
        """Outputs of the last W // 2 frames (edge-padded); resets the stream."""
        if self._buf is None:
            return None
        n = next(iter(self._buf.values())).shape[0]
        self._buf = _cat(self._buf, _repeat(self._buf, n - 1, self.half))
        out = self._emit()
        self._buf = None
        return out


def edge_padded_windows(n_frames: int, context_frames: int) -> Tensor:
    """(n_frames, W) int64 frame indices of each frame's window, clamped to [0, n_frames - 1]."""
    half = context_frames // 2
    t = torch.arange(n_frames)[:, None] + torch.arange(-half, half + 1)[None, :]
    return t.clamp_(0, n_frames - 1)

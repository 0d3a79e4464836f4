"""PoseNetwork: a registered backbone + a registered head, and the one interface every network
offers to training and prediction.

Every network sees frames through a temporal window of ``context_frames`` (W) frames centred on
the frame it predicts; W = 1 for single-frame networks. Training and prediction use only these
methods, so they need no per-model branches:

* :meth:`PoseNetwork.forward_train` — one backbone pass over B labeled windows and, for
  semi-supervised training, one unlabeled clip; every decoder's outputs.
* :meth:`PoseNetwork.forward_windows` — B windows ``(B, W, 3, H, W_img)`` -> outputs of the B
  centre frames (validation, labeled-frame evaluation).
* :meth:`PoseNetwork.forward_images` — unrelated images, each its own (edge-padded) window.
* :class:`FrameStream` — consecutive video frames pushed in batches, one prediction per frame
  (edge-padded at both ends), the backbone run once per frame.

``forward`` = ``forward_head(forward_features(images))`` on single images. Temporal-context
networks (:mod:`vidpose.models.context`) override the window methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vidpose.models.backbones import Backbone, build_backbone, normalize_imagenet
from vidpose.models.heads import HEADS, Head, HeadOutput, build_head

Features = Tensor | dict[int, Tensor]
"""Backbone features of N frames: ``(N, C, h, w)``, or ``{stride: (N, C_s, h_s, w_s)}``."""


@dataclass
class NetworkOutput:
    """A network's outputs for some frames.

    Attributes:
        decoders: each decoder's own output (one for single-frame networks; a context network
            has a single-frame and a context decoder). Losses are summed over them.
        combined: the prediction: per keypoint the decoder the network trusts (for a
            single-decoder network, ``decoders[0]``).
    """

    decoders: list[HeadOutput]
    combined: HeadOutput


def split_output(out: HeadOutput, n: int) -> tuple[HeadOutput, HeadOutput]:
    """The first ``n`` frames' outputs and the rest's."""

    def part(sl: slice) -> HeadOutput:
        hm = out.heatmaps[sl] if out.heatmaps is not None else None
        return HeadOutput(out.coords[sl], out.confidence[sl], hm, out.heatmap_stride)

    return part(slice(0, n)), part(slice(n, None))


def slice_features(features: Features, sl: slice) -> Features:
    """Frames ``sl`` of per-frame features."""
    if isinstance(features, Tensor):
        return features[sl]
    return {s: f[sl] for s, f in features.items()}


def cat_features(a: Features | None, b: Features) -> Features:
    """Frames of ``a`` followed by frames of ``b`` (``b`` itself when ``a`` is None)."""
    if a is None:
        return b
    if isinstance(b, Tensor):
        return torch.cat([a, b])  # type: ignore[list-item]
    return {s: torch.cat([a[s], b[s]]) for s in b}  # type: ignore[index]


def n_frames(features: Features) -> int:
    first = features if isinstance(features, Tensor) else next(iter(features.values()))
    return int(first.shape[0])


class PoseNetwork(nn.Module):
    """Backbone + head. Works with ``channels_last`` inputs/weights and bf16 autocast.

    Attributes:
        backbone: the feature extractor.
        head: the keypoint head.
        stride: backbone stride; input height and width must be multiples of it.
        n_keypoints: K.
        heatmap_stride: the head's heatmap stride, None for heads without heatmaps.
        context_frames: W, frames per temporal window (1: single-frame).
        channels_last: whether inputs are converted to channels_last (see
            :meth:`use_channels_last`).
    """

    def __init__(self, backbone: Backbone, head: Head) -> None:
        super().__init__()
        if head.in_channels != backbone.channels or head.stride != backbone.stride:
            raise ValueError(
                f"head expects {head.in_channels} channels at stride {head.stride}, backbone "
                f"gives {backbone.channels} at stride {backbone.stride}"
            )
        self.backbone = backbone
        self.head = head
        self.channels_last = False

    @property
    def stride(self) -> int:
        return self.backbone.stride

    @property
    def n_keypoints(self) -> int:
        return self.head.n_keypoints

    @property
    def heatmap_stride(self) -> int | None:
        return self.head.heatmap_stride

    @property
    def context_frames(self) -> int:
        return 1

    def use_channels_last(self) -> PoseNetwork:
        """Weights and inputs in channels_last memory format (faster convolutions on GPUs)."""
        self.to(memory_format=torch.channels_last)
        self.channels_last = True
        return self

    # -- the two halves --------------------------------------------------------------------

    def forward_features(self, images: Tensor) -> Features:
        """Backbone features of raw images.

        Args:
            images: (B, 3, H, W) float RGB in [0, 1]; H and W multiples of ``stride``.

        Returns:
            (B, C, H/stride, W/stride) features, C = ``backbone.channels``; for multiscale
            heads, every stage as ``{stride: (B, C_s, H/s, W/s)}``.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError(
                f"image size {h}x{w} is not a multiple of the backbone stride {self.stride}; "
                "resize or pad the images"
            )
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        x = normalize_imagenet(images)
        if self.head.multiscale:
            return self.backbone.forward_intermediates(x)
        return self.backbone(x)

    def forward_head(self, features: Features) -> HeadOutput:
        """(B, C, h, w) backbone features -> HeadOutput (coords in input pixels)."""
        return self.head(features)

    def forward(self, images: Tensor) -> HeadOutput:
        """(B, 3, H, W) float RGB in [0, 1] -> HeadOutput with coords (B, K, 2) in input px."""
        return self.forward_head(self.forward_features(images))

    # -- the interface training and prediction use --------------------------------------------

    def forward_sequence(self, features: Features, views: int = 1) -> NetworkOutput:
        """Features of N consecutive frames -> outputs of the N - W + 1 frames whose whole
        window is inside (frames ``W // 2 .. N - 1 - W // 2``); with ``views`` > 1, of
        ``views`` such sequences one after another (synchronized cameras), each trimmed alike."""
        out = self.forward_head(features)
        return NetworkOutput([out], out)

    def forward_window_features(self, features: Features, b: int) -> NetworkOutput:
        """Features of B windows laid out window by window (``B * W`` frames) -> outputs of
        the B centre frames."""
        out = self.forward_head(features)
        return NetworkOutput([out], out)

    def forward_windows(self, windows: Tensor) -> NetworkOutput:
        """windows (B, W, 3, H, W_img) float RGB in [0, 1] -> outputs of the B centre frames.

        The backbone runs once on all B * W frames.
        """
        self._check_windows(windows)
        b = windows.shape[0]
        return self.forward_window_features(self.forward_features(windows.flatten(0, 1)), b)

    def forward_train(
        self, windows: Tensor, clip: Tensor | None = None
    ) -> tuple[NetworkOutput, NetworkOutput | None]:
        """One training forward: B labeled windows and an optional unlabeled clip.

        Args:
            windows: (B, W, 3, H, W_img) float RGB in [0, 1], the labeled frame at ``W // 2``.
            clip: (T, 3, H, W_img) consecutive unlabeled frames, T >= W, or (V, T, 3, H, W_img)
                for V synchronized cameras, or None.

        Returns:
            The B labeled frames' outputs, and the clip's outputs for its frames
            ``W // 2 .. T - 1 - W // 2`` (of each view, view after view; None without a clip).
            The backbone runs once over all B * W + V * T frames.
        """
        self._check_windows(windows)
        b = windows.shape[0]
        images = windows.flatten(0, 1)
        if clip is not None:
            images = torch.cat([images, clip.flatten(0, clip.ndim - 4).to(images.dtype)])
        # One head pass over labeled frames and clip together, as one batch.
        lab, rest = split_output(self(images), b)
        return NetworkOutput([lab], lab), None if clip is None else NetworkOutput([rest], rest)

    def forward_images(self, images: Tensor) -> HeadOutput:
        """(B, 3, H, W) unrelated images, each its own window (its frame repeated)."""
        return self(images)

    def _check_windows(self, windows: Tensor) -> None:
        if windows.ndim != 5 or windows.shape[1] != self.context_frames:
            raise ValueError(
                f"windows must be (B, {self.context_frames}, 3, H, W), got {tuple(windows.shape)}"
            )


class FrameStream:
    """One prediction per frame from consecutive frames pushed in batches.

    :meth:`push` the next frames (or their features), then :meth:`finish`. Each call returns
    the outputs of the frames whose windows became complete, in frame order (None if none did).
    A window reaching before the first frame repeats frame 0, one reaching past the last
    repeats the last frame. At most ``batch + W - 1`` frames' features are held, whatever the
    stream's length; a single-frame network (W = 1) holds none.

    Args:
        network: the network.
        features_fn: computes the features of a batch of images (default
            ``network.forward_features``; pass a compiled one to speed it up).
    """

    def __init__(
        self, network: PoseNetwork, features_fn: Callable[[Tensor], Features] | None = None
    ) -> None:
        self.network = network
        self.half = network.context_frames // 2
        self.features_fn = features_fn or network.forward_features
        self._buf: Features | None = None

    def push(self, images: Tensor) -> HeadOutput | None:
        """The next B frames, (B, 3, H, W) float RGB in [0, 1]."""
        return self.push_features(self.features_fn(images))

    def push_features(self, features: Features) -> HeadOutput | None:
        """Like :meth:`push`, with the frames' backbone features."""
        if self.half == 0:
            return self.network.forward_sequence(features).combined
        if self._buf is None:
            features = cat_features(_repeat(features, 0, self.half), features)
        self._buf = cat_features(self._buf, features)
        return self._emit()

    def finish(self) -> HeadOutput | None:
        """Outputs of the last W // 2 frames (edge-padded); resets the stream."""
        if self._buf is None:
            return None
        n = n_frames(self._buf)
        self._buf = cat_features(self._buf, _repeat(self._buf, n - 1, self.half))
        out = self._emit()
        self._buf = None
        return out

    def _emit(self) -> HeadOutput | None:
        assert self._buf is not None
        n = n_frames(self._buf)
        if n < 2 * self.half + 1:
            return None
        out = self.network.forward_sequence(self._buf)
        self._buf = slice_features(self._buf, slice(n - 2 * self.half, None))
        return out.combined


def _repeat(features: Features, index: int, times: int) -> Features:
    if isinstance(features, Tensor):
        return features[index : index + 1].expand(times, *features.shape[1:])
    return {s: f[index : index + 1].expand(times, *f.shape[1:]) for s, f in features.items()}


def build_network(
    backbone: str,
    head: str,
    n_keypoints: int,
    pretrained: bool = False,
    heatmap_stride: int = 4,
    **head_kwargs: Any,
) -> PoseNetwork:
    """Build a PoseNetwork from registry names.

    Args:
        backbone: a name in :data:`~vidpose.models.backbones.BACKBONES`.
        head: a name in :data:`~vidpose.models.heads.HEADS`.
        n_keypoints: K.
        pretrained: load ImageNet weights into the backbone (ConfigError if unavailable).
        heatmap_stride: heatmap stride, passed to heads that produce heatmaps, ignored by
            the others.
        **head_kwargs: the head's other options (``vidpose list heads``).

    Returns:
        The network, in training mode, float32, contiguous memory format.
    """
    HEADS.get(head)  # unknown head -> ConfigError before building a backbone
    bb = build_backbone(backbone, pretrained)
    return attach_head(bb, head, n_keypoints, heatmap_stride, **head_kwargs)


def attach_head(
    backbone: Backbone,
    head: str,
    n_keypoints: int,
    heatmap_stride: int = 4,
    **head_kwargs: Any,
) -> PoseNetwork:
    """A PoseNetwork of an existing backbone and a new head registered under ``head``.

    Fills in what the head needs to know about the backbone: ``heatmap_stride`` for heads
    that take it, ``feature_channels`` (``backbone.feature_info``) for multiscale heads.
    Arguments as in :func:`build_network`.
    """
    spec = HEADS.get(head)
    if spec.produces_heatmaps and "heatmap_stride" in spec.options:
        head_kwargs = {"heatmap_stride": heatmap_stride, **head_kwargs}
    if "feature_channels" in spec.options:
        head_kwargs = {"feature_channels": dict(backbone.feature_info), **head_kwargs}
    hd = build_head(head, backbone.channels, backbone.stride, n_keypoints, **head_kwargs)
    # A head may name the network class it needs (the context head: one over frame windows).
    network_cls = getattr(hd, "network_cls", None) or PoseNetwork
    return network_cls(backbone, hd)

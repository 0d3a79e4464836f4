"""PoseNetwork: a registered backbone + a registered head, images in, keypoints out.

``forward`` = ``forward_head(forward_features(images))``. The two halves are public so that a
temporal-context model can run the backbone once per frame, combine the per-frame features
(same shape as one frame's) and run the head once.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from vidpose.models.backbones import Backbone, build_backbone, normalize_imagenet
from vidpose.models.heads import Head, HeadOutput, build_head, get_head_spec


class PoseNetwork(nn.Module):
    """Backbone + head. Works with ``channels_last`` inputs/weights and bf16 autocast.

    Attributes:
        backbone: the feature extractor.
        head: the keypoint head.
        stride: backbone stride; input height and width must be multiples of it.
        n_keypoints: K.
        heatmap_stride: the head's heatmap stride, None for heads without heatmaps.
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

    @property
    def stride(self) -> int:
        return self.backbone.stride

    @property
    def n_keypoints(self) -> int:
        return self.head.n_keypoints

    @property
    def heatmap_stride(self) -> int | None:
        return self.head.heatmap_stride

    def forward_features(self, images: Tensor) -> Tensor | dict[int, Tensor]:
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
        x = normalize_imagenet(images)
        if self.head.multiscale:
            return self.backbone.forward_intermediates(x)
        return self.backbone(x)

    def forward_head(self, features: Tensor | dict[int, Tensor]) -> HeadOutput:
        """(B, C, h, w) backbone features -> HeadOutput (coords in input pixels)."""
        return self.head(features)

    def forward(self, images: Tensor) -> HeadOutput:
        """(B, 3, H, W) float RGB in [0, 1] -> HeadOutput with coords (B, K, 2) in input px."""
        return self.forward_head(self.forward_features(images))


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
        backbone: a name from :func:`vidpose.models.backbones.list_backbones`.
        head: a name from :func:`vidpose.models.heads.list_heads`.
        n_keypoints: K.
        pretrained: load ImageNet weights into the backbone (ConfigError if unavailable).
        heatmap_stride: heatmap stride, passed to heads that produce heatmaps, ignored by
            the others.
        **head_kwargs: the head's other options (see :func:`vidpose.models.heads.head_help`).

    Returns:
        The network, in training mode, float32, contiguous memory format.
    """
    get_head_spec(head)  # unknown head -> ConfigError before building a backbone
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
    spec = get_head_spec(head)
    if spec.produces_heatmaps and "heatmap_stride" in spec.options:
        head_kwargs = {"heatmap_stride": heatmap_stride, **head_kwargs}
    if "feature_channels" in spec.options:
        head_kwargs = {"feature_channels": dict(backbone.feature_info), **head_kwargs}
    hd = build_head(head, backbone.channels, backbone.stride, n_keypoints, **head_kwargs)
    # A head may name the network class it needs (the context head: one over frame windows).
    network_cls = getattr(hd, "network_cls", None) or PoseNetwork
    return network_cls(backbone, hd)

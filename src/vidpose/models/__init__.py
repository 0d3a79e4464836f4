"""Pose networks: backbone and head registries, heatmap targets and decoding, PoseNetwork.

Pure torch building blocks; the Lightning training module composes them. Coordinates are
(x, y) in model-input pixels with the pixel-centre convention described in
:mod:`vidpose.models.heatmaps`.

Typical use::

    net = build_network("resnet50", "heatmap", n_keypoints=17, pretrained=True)
    out = net(images)          # images (B, 3, H, W) float in [0, 1] -> HeadOutput
    out.coords, out.confidence, out.heatmaps
"""

from vidpose.models.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    BackboneSpec,
    backbone_help,
    build_backbone,
    get_backbone_spec,
    list_backbones,
    normalize_imagenet,
    register_backbone,
)
from vidpose.models.context import (
    ContextHeatmapHead,
    ContextOutput,
    ContextPoseNetwork,
    SlidingWindow,
    head_config_options,
    select_more_confident,
)
from vidpose.models.heads import (
    Head,
    HeadOutput,
    HeadSpec,
    HeatmapHead,
    RegressionHead,
    build_head,
    get_head_spec,
    head_help,
    list_heads,
    register_head,
)
from vidpose.models.heatmaps import (
    DEFAULT_SIGMA,
    DEFAULT_WINDOW_RADIUS,
    decode_heatmaps,
    gaussian_targets,
    gaussian_targets_px,
    heatmap_confidence,
    heatmap_to_input,
    input_to_heatmap,
    soft_argmax,
    spatial_softmax,
)
from vidpose.models.network import PoseNetwork, attach_head, build_network

__all__ = [
    "DEFAULT_SIGMA",
    "DEFAULT_WINDOW_RADIUS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "BackboneSpec",
    "ContextHeatmapHead",
    "ContextOutput",
    "ContextPoseNetwork",
    "Head",
    "HeadOutput",
    "HeadSpec",
    "HeatmapHead",
    "PoseNetwork",
    "RegressionHead",
    "SlidingWindow",
    "attach_head",
    "backbone_help",
    "build_backbone",
    "build_head",
    "build_network",
    "decode_heatmaps",
    "gaussian_targets",
    "gaussian_targets_px",
    "get_backbone_spec",
    "get_head_spec",
    "head_config_options",
    "head_help",
    "heatmap_confidence",
    "heatmap_to_input",
    "input_to_heatmap",
    "list_backbones",
    "list_heads",
    "normalize_imagenet",
    "register_backbone",
    "register_head",
    "select_more_confident",
    "soft_argmax",
    "spatial_softmax",
]

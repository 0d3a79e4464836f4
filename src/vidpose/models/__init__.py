"""Pose networks: backbone and head registries, heatmap targets and decoding, PoseNetwork.

Pure torch building blocks; the Lightning training module composes them. Coordinates are
(x, y) in model-input pixels with the pixel-centre convention described in
:mod:`vidpose.models.heatmaps`. Every network has the interface of
:mod:`vidpose.models.network` (labeled windows, clips, unrelated images, a frame stream).

Typical use::

    net = build_network("resnet50", "heatmap", n_keypoints=17, pretrained=True)
    out = net(images)          # images (B, 3, H, W) float in [0, 1] -> HeadOutput
    out.coords, out.confidence, out.heatmaps
"""

from vidpose.models.backbones import (
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    BackboneSpec,
    build_backbone,
    normalize_imagenet,
    register_backbone,
)
from vidpose.models.context import (
    ContextHeatmapHead,
    ContextOutput,
    ContextPoseNetwork,
    select_more_confident,
)
from vidpose.models.heads import (
    HEADS,
    Head,
    HeadOutput,
    HeadSpec,
    HeatmapHead,
    RegressionHead,
    build_head,
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
from vidpose.models.network import (
    FrameStream,
    NetworkOutput,
    PoseNetwork,
    attach_head,
    build_network,
)

__all__ = [
    "BACKBONES",
    "DEFAULT_SIGMA",
    "DEFAULT_WINDOW_RADIUS",
    "HEADS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "BackboneSpec",
    "ContextHeatmapHead",
    "ContextOutput",
    "ContextPoseNetwork",
    "FrameStream",
    "Head",
    "HeadOutput",
    "HeadSpec",
    "HeatmapHead",
    "NetworkOutput",
    "PoseNetwork",
    "RegressionHead",
    "attach_head",
    "build_backbone",
    "build_head",
    "build_network",
    "decode_heatmaps",
    "gaussian_targets",
    "gaussian_targets_px",
    "heatmap_confidence",
    "heatmap_to_input",
    "input_to_heatmap",
    "normalize_imagenet",
    "register_backbone",
    "register_head",
    "select_more_confident",
    "soft_argmax",
    "spatial_softmax",
]

"""Seeing results: labeled videos, diagnostic plots, the evaluation report, outlier frames."""

from vidpose.viz.colors import keypoint_colors, keypoint_colors_u8

__all__ = ["keypoint_colors", "keypoint_colors_u8"]

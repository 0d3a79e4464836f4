"""Inference on images and videos with a trained model directory."""

from vidpose.predict.predictor import PoseModel, PredictStats, load_model

__all__ = ["PoseModel", "PredictStats", "load_model"]

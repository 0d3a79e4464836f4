"""Training: from a project folder to a model directory (see :mod:`vidpose.training.run`)."""

from vidpose.training.run import TrainResult, train

__all__ = ["TrainResult", "train"]

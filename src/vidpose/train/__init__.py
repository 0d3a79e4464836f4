"""Training: from a project folder to a model directory (see :mod:`vidpose.train.run`)."""

from vidpose.train.run import TrainResult, train

__all__ = ["TrainResult", "train"]

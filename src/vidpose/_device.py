"""Which torch device a command runs on."""

from __future__ import annotations

import torch

from vidpose.errors import ConfigError


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when a GPU is present, else CPU; asking for a missing CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} was asked for but no CUDA device is available; use auto or cpu"
        )
    return torch.device(device)

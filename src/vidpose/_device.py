"""Which torch device a command runs on."""

from __future__ import annotations

import weakref

import numpy as np
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


# Tensors made from host constants (PCA means, keypoint indices...), kept per owning object and
# device: building one from host memory inside a training step is a blocking host-to-device
# copy that stalls the CPU until the GPU has drained its queue.
_CONSTANTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def device_constant(
    owner: object, name: str, value, device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``value`` (array-like) as a tensor on ``device``, copied there once per ``owner``
    (any weak-referenceable, hashable object the value belongs to), ``name``, device and
    dtype. The owner's values must not change after the first call."""
    per = _CONSTANTS.setdefault(owner, {})
    key = (name, str(device), dtype)
    t = per.get(key)
    if t is None:
        t = torch.as_tensor(np.ascontiguousarray(value), dtype=dtype).to(device)
        per[key] = t
    return t


def device_vector(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    """A small 1-D tensor of Python numbers on ``like``'s device and dtype, made with fill
    kernels rather than a blocking copy from host memory."""
    return torch.stack([like.new_full((), float(v)) for v in values])

"""The best weights by validation error, kept on the training device.

Lightning's ``ModelCheckpoint(monitor=...)`` reads the monitored value back to the host after
every validation and writes a checkpoint file whenever it improves: with validation every
epoch of a few steps, the GPU waits for the host (and the disk) many times a run. Here the
comparison and the copy happen on the device (``torch.where``, no sync); the file
``checkpoints/best.ckpt`` is written when a resumable checkpoint is saved and when training
ends, so a killed run loses no more than it would lose anyway.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch


class BestWeights(L.Callback):
    """Keeps the module's weights with the lowest ``monitor`` and writes them to ``path``.

    Args:
        path: where the best weights are written, as a Lightning-style checkpoint with a
            ``state_dict`` (what :func:`vidpose.predict.load_model` reads).
        monitor: the logged validation metric (lower is better; NaN never improves).
    """

    def __init__(self, path: str | Path, monitor: str = "val/pixel_error") -> None:
        self.path = Path(path)
        self.monitor = monitor
        self._flat: _Flat | None = None
        self._sources: dict[str, torch.Tensor] | None = None
        self._stage: _Flat | None = None  # this validation's weights, filled in place
        self._score: torch.Tensor | None = None
        self._step: torch.Tensor | None = None
        self._written_step: int | None = None
        self.best_score: float | None = None  # as of the last checkpoint (for resume)
        self.best_step: int | None = None

    @property
    def has_weights(self) -> bool:
        """Whether there are best weights: a validation ran (or a resumed run had them). The
        same in every process of a multi-device run: the monitored value is reduced over them."""
        return self._flat is not None

    # -- state carried in last.ckpt ---------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        self._sync()
        return {"best_score": self.best_score, "best_step": self.best_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict.get("best_score")
        self.best_step = state_dict.get("best_step")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A resumed run starts from the best weights written before (if any)."""
        if self.best_score is None or not self.path.exists():
            return
        state = torch.load(self.path, map_location="cpu", weights_only=False)["state_dict"]
        self._flat = _Flat.of({k: v.to(pl_module.device) for k, v in state.items()})
        self._score = torch.tensor(self.best_score, device=pl_module.device)
        self._step = torch.tensor(self.best_step or 0, device=pl_module.device)

    # -- tracking ---------------------------------------------------------------------------

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        score = trainer.callback_metrics.get(self.monitor)
        if score is None:
            return
        if self._sources is None or self._stage is None:
            # The weights and buffers are updated in place: the same tensors all run long.
            self._sources = pl_module.state_dict(keep_vars=True)
            self._stage = _Flat.empty_like(self._sources)
        self._stage.fill(self._sources)
        flat = self._stage
        score = score.detach().float().to(pl_module.device)
        step = torch.full((), trainer.global_step, device=pl_module.device, dtype=torch.long)
        if self._flat is None:
            self._flat = flat.clone()
            self._score = torch.where(score.isnan(), torch.inf, score)
            self._step = step
            return
        assert self._score is not None and self._step is not None
        improved = score < self._score  # NaN: False
        # One where + copy per dtype (a few kernels), not one per weight tensor.
        self._flat.update_where(improved, flat)
        self._score = torch.where(improved, score, self._score)
        self._step = torch.where(improved, step, self._step)

    def _sync(self) -> None:
        if self._score is not None and self._step is not None:
            score = float(self._score)
            self.best_score = None if score == float("inf") else score
            self.best_step = int(self._step)

    # -- writing ----------------------------------------------------------------------------

    def write(self, trainer: L.Trainer) -> None:
        """Write the best weights so far to ``path`` (once per improvement)."""
        self._sync()
        if self._flat is None or self.best_step is None or self.best_step == self._written_step:
            return
        if trainer.is_global_zero:
            ckpt = {
                "state_dict": self._flat.state_dict(),
                "global_step": self.best_step,
                "pytorch-lightning_version": L.__version__,
                "vidpose_best": {self.monitor: self.best_score},
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            trainer.strategy.checkpoint_io.save_checkpoint(ckpt, self.path)
        self._written_step = self.best_step

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.write(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        # An interrupted run keeps its best weights so far (last.ckpt may be older).
        if self._flat is not None:
            self.write(trainer)


class _Flat:
    """A state dict as one contiguous device buffer per dtype (plus names and shapes)."""

    def __init__(self, names, shapes, dtypes, buffers: dict[torch.dtype, torch.Tensor]) -> None:
        self.names, self.shapes, self.dtypes, self.buffers = names, shapes, dtypes, buffers
        self._views: list[torch.Tensor] | None = None

    @classmethod
    def of(cls, state: dict[str, torch.Tensor]) -> _Flat:
        flat = cls.empty_like(state)
        flat.fill(state)
        return flat

    @classmethod
    def empty_like(cls, state: dict[str, torch.Tensor]) -> _Flat:
        """Uninitialised buffers for tensors shaped like ``state``'s (see :meth:`fill`)."""
        sizes: dict[torch.dtype, int] = {}
        devices: dict[torch.dtype, torch.device] = {}
        for v in state.values():
            sizes[v.dtype] = sizes.get(v.dtype, 0) + v.numel()
            devices.setdefault(v.dtype, v.device)
        buffers = {dt: torch.empty(n, dtype=dt, device=devices[dt]) for dt, n in sizes.items()}
        return cls(
            list(state),
            [tuple(v.shape) for v in state.values()],
            [v.dtype for v in state.values()],
            buffers,
        )

    def views(self) -> list[torch.Tensor]:
        """Each tensor's slice of its buffer, shaped as the tensor, in ``names`` order."""
        offsets = dict.fromkeys(self.buffers, 0)
        out = []
        for shape, dt in zip(self.shapes, self.dtypes, strict=True):
            n = math.prod(shape)
            out.append(self.buffers[dt][offsets[dt] : offsets[dt] + n].view(shape))
            offsets[dt] += n
        return out

    def fill(self, state: dict[str, torch.Tensor]) -> None:
        """Copy ``state``'s values (same names, shapes and dtypes) into the buffers: one
        foreach call (a C++ loop) instead of a Python loop over hundreds of tensors; sources
        in any memory format (channels_last weights) land in logical order."""
        if self._views is None:
            self._views = self.views()
        torch._foreach_copy_(self._views, [v.detach() for v in state.values()])

    def clone(self) -> _Flat:
        return _Flat(
            self.names,
            self.shapes,
            self.dtypes,
            {dt: b.clone() for dt, b in self.buffers.items()},
        )

    def update_where(self, condition: torch.Tensor, other: _Flat) -> None:
        for dt, buf in self.buffers.items():
            buf.copy_(torch.where(condition, other.buffers[dt], buf))

    def state_dict(self) -> dict[str, torch.Tensor]:
        host = {dt: b.cpu() for dt, b in self.buffers.items()}
        offsets = dict.fromkeys(host, 0)
        out = {}
        for name, shape, dt in zip(self.names, self.shapes, self.dtypes, strict=True):
            n = math.prod(shape)
            out[name] = host[dt][offsets[dt] : offsets[dt] + n].reshape(shape).clone()
            offsets[dt] += n
        return out

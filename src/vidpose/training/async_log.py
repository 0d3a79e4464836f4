"""Metrics logged from device tensors without making the training loop wait for the GPU.

Lightning's loggers turn every logged tensor into a Python float the moment it is logged,
which waits for the GPU to finish everything queued so far; with steps replayed from a CUDA
graph, the host is otherwise many steps ahead, and each such wait leaves the GPU idle while
the host catches up. :class:`AsyncMetrics` instead copies the values into pinned host memory
with a non-blocking copy, records a CUDA event, and hands them to the loggers once the event
has passed (checked without blocking at every later record, and waited for at the end of
training). Values and steps are exactly those logged; they only reach the files a little later.
On CPU, values go to the loggers at once.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import lightning as L
import torch


class AsyncMetrics(L.Callback):
    """Deferred logging of device metrics; ``latest`` holds the newest values on the host (for
    the progress bar)."""

    def __init__(self) -> None:
        self._pending: deque[tuple[int, list[str], torch.Tensor, Any]] = deque()
        self.latest: dict[str, float] = {}
        self._trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def record(self, step: int, metrics: dict[str, torch.Tensor | float]) -> None:
        """Log ``metrics`` (scalars) at ``step`` once their values are on the host."""
        if not metrics:
            return
        names = list(metrics)
        tensors = [v for v in metrics.values() if isinstance(v, torch.Tensor)]
        device = tensors[0].device if tensors else torch.device("cpu")
        values = torch.stack(
            [
                v.detach().float().reshape(())
                if isinstance(v, torch.Tensor)
                else torch.full((), float(v), device=device)
                for v in metrics.values()
            ]
        )
        if device.type == "cuda":
            host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            host.copy_(values, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        else:
            host, event = values, None
        self._pending.append((step, names, host, event))
        self._drain(block=False)

    def _drain(self, block: bool) -> None:
        while self._pending:
            step, names, host, event = self._pending[0]
            if event is not None:
                if not block and not event.query():
                    return
                event.synchronize()
            self._pending.popleft()
            row = dict(zip(names, host.tolist(), strict=True))
            self.latest.update(row)
            if self._trainer is not None and self._trainer.is_global_zero:
                for logger in self._trainer.loggers:
                    logger.log_metrics(row, step)

    def flush(self) -> None:
        """Wait for every pending value and hand it to the loggers."""
        self._drain(block=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._drain(block=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.flush()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.flush()

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.flush()  # the logs on disk keep up with the checkpoint


class ProgressBar(L.pytorch.callbacks.RichProgressBar):
    """Lightning's rich progress bar showing the newest values :class:`AsyncMetrics` has on the
    host, instead of reading logged tensors (which would wait for the GPU at every refresh)."""

    def __init__(self, metrics: AsyncMetrics, shown: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.shown = shown

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        out = dict(L.pytorch.callbacks.progress.progress_bar.get_standard_metrics(trainer))
        for name in self.shown:
            if name in self.metrics.latest:
                out[name] = self.metrics.latest[name]
        return out

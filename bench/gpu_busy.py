"""How busy the GPU is: ``nvidia-smi`` utilization.gpu sampled in the background (light: the
benches that spawn worker processes import it without Lightning)."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time


class Sampler:
    """nvidia-smi utilization.gpu every ``interval_ms``, with host timestamps."""

    def __init__(self, interval_ms: int = 200) -> None:
        self.samples: list[tuple[float, float]] = []
        self.proc = subprocess.Popen(
            [
                "nvidia-smi",
                "--query-gpu=utilization.gpu",
                "--format=csv,noheader,nounits",
                "-lms",
                str(interval_ms),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.samples.append((time.time(), float(line.strip().split(",")[0])))

    def busy(self, start: float, end: float) -> tuple[float, int]:
        inside = [u for t, u in self.samples if start <= t <= end]
        return (sum(inside) / len(inside) if inside else float("nan")), len(inside)

    def stop(self) -> None:
        self.proc.terminate()

"""Rich progress bars: frames of a video (with frames/s), shared by prediction and
label-video; videos of a batch prediction."""

from __future__ import annotations


class FramesProgress:
    """A rich progress bar showing frames/s."""

    def __init__(self, name: str, total: int) -> None:
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        class _FPS(TextColumn):
            def render(self, task):  # type: ignore[override]
                speed = task.finished_speed or task.speed
                return (
                    super().render(task)
                    if speed is None
                    else TextColumn(f"{speed:,.0f} frames/s").render(task)
                )

        self.p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _FPS(""),
            TimeRemainingColumn(),
            transient=False,
        )
        self.p.start()
        # The name is a file name: brackets in it are text, not rich markup.
        self.task = self.p.add_task(escape(name), total=total)

    def set_total(self, total: int) -> None:
        self.p.update(self.task, total=total)

    def advance(self, n: int) -> None:
        self.p.advance(self.task, n)

    def stop(self) -> None:
        self.p.stop()


class VideosProgress:
    """A rich progress bar over a batch of videos: videos done, failures, frames/s so far."""

    def __init__(self, total: int, done: int = 0) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        class _FPS(TextColumn):
            def render(self, task):  # type: ignore[override]
                elapsed = task.elapsed or 0.0
                frames = task.fields.get("frames", 0)
                text = f"{frames / elapsed:,.0f} frames/s" if elapsed > 0 and frames else ""
                return TextColumn(text).render(task)

        self.p = Progress(
            TextColumn("[bold]predict"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("videos, {task.fields[failed]} failed"),
            _FPS(""),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.p.start()
        self.task = self.p.add_task("predict", total=total, completed=done, failed=0, frames=0)
        self.failed = self.frames = 0

    def advance(self, frames: int = 0, failed: bool = False) -> None:
        """One more video done (``frames`` predicted), or failed."""
        self.frames += frames
        self.failed += int(failed)
        self.p.update(self.task, advance=1, frames=self.frames, failed=self.failed)

    def stop(self) -> None:
        self.p.stop()

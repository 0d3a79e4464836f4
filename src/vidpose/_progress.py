"""A rich progress bar counting frames, with frames/s, shared by prediction and label-video."""

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

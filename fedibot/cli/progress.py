"""A rich progress display for model loading and denoising steps (thread-safe)."""

from __future__ import annotations

from typing import Any

from generator.types import Progress


class RichProgress(Progress):
    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self.console = console or Console(stderr=True)
        self.bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._task: Any = None

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def model_loading(self, model: str) -> None:
        self.bar.console.print(f"loading model [bold]{model}[/] …")

    def model_loaded(self, model: str, seconds: float) -> None:
        self.bar.console.print(f"model [bold]{model}[/] ready in {seconds:.1f}s")

    def batch_started(self, model: str, n_images: int, steps: int) -> None:
        self._task = self.bar.add_task(f"{n_images} image(s) with {model}", total=steps)

    def step(self, step: int, total: int) -> None:
        if self._task is not None:
            self.bar.update(self._task, completed=step, total=total)

"""One runner for every grid of runs (a comparison's modes x seeds, a curriculum's chains).

A grid is a list of `GridTask`s: a name, a module-level function with plain-value arguments (so
that it can run in another process), and the run directories it trains, in order (for the live
lines). The runner does the tasks in this process one after another (`workers == 1`), or on Ray:
a local Ray of `workers` processes, or an existing cluster by address. Wherever they run:

- a task that raises, or whose worker dies, is tried once more; the retry resumes its runs from
  their newest checkpoints, since `train_run` resumes whatever it finds;
- a task that fails twice is recorded in `failures.json` (one line: the error and where it was
  raised) while the others go on;
- re-running the same grid skips finished runs and resumes the others;
- the terminal shows one live line per task, read from its runs' own metrics files (in this
  process, each run's own progress bar instead).

Ray is an optional extra: it is imported only when a grid is spread over it. On a cluster, `out`
must be a path every node can write (shared storage).
"""

from __future__ import annotations

import dataclasses
import json
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from mutualrl.errors import MutualRLError
from mutualrl.tracking import RunDir, read_failures, write_failures

#: attempts per task: the first, and one retry
ATTEMPTS = 2
RAY_INSTALL_HINT = "pip install -e '.[ray]' (or pip install 'ray>=2.40')"


@dataclass(frozen=True)
class GridTask:
    """One unit of a grid: `work(*args, quiet=...)`, which trains `runs` ((directory, frames) pairs) in order."""

    name: str
    work: Callable[..., None]
    args: tuple[Any, ...]
    runs: tuple[tuple[Path, int], ...] = ()

    def finished(self) -> bool:
        return bool(self.runs) and all((d / "summary.json").is_file() for d, _ in self.runs)


@dataclass(frozen=True)
class Placement:
    """Where a grid runs: `workers` tasks at once (> 1, or an `address`: on Ray), each with
    `threads` torch threads (and Ray CPUs) and `gpus_per_run` GPUs."""

    workers: int = 1
    threads: int | None = None
    address: str | None = None
    gpus_per_run: float = 0.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise MutualRLError(f"--workers must be >= 1, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise MutualRLError(f"--threads must be >= 1, got {self.threads}")
        if self.gpus_per_run < 0:
            raise MutualRLError(f"--gpus-per-run must be >= 0, got {self.gpus_per_run}")

    def use_threads(self) -> None:
        """This process's torch threads, where `threads` is given."""
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)

    @property
    def on_ray(self) -> bool:
        return self.workers > 1 or bool(self.address)

    def for_device(self, device: str) -> "Placement":
        """With `device: cuda` and no GPU share given, each run asks Ray for one GPU."""
        if device == "cuda" and not self.gpus_per_run:
            return dataclasses.replace(self, gpus_per_run=1.0)
        return self


def train_run(run_dir: str | Path, config: dict[str, Any], quiet: bool = True) -> None:
    """Train one run to its budget: skip it if finished, resume it if it has a checkpoint."""
    from mutualrl.config import TrainConfig
    from mutualrl.loop import Trainer

    run_dir = Path(run_dir)
    if (run_dir / "summary.json").is_file():
        return
    if RunDir(run_dir).checkpoints():
        trainer = Trainer.resume(run_dir, quiet=quiet)
    else:
        trainer = Trainer(TrainConfig.from_dict(config), run_dir, quiet=quiet)
    trainer.train()


def run_grid(tasks: list[GridTask], out: Path, placement: Placement = Placement(), quiet: bool = False) -> dict[str, str]:
    """Do every task, in this process or on Ray; write `out/failures.json` (failures of tasks not in
    this grid stand) and return {task: error} of this grid's tasks that failed twice."""
    if len({t.name for t in tasks}) != len(tasks):
        raise ValueError("grid task names must be unique")
    failures = _on_ray(tasks, out, placement, quiet) if placement.on_ray else _in_turn(tasks, placement, quiet)
    ran = {t.name for t in tasks}
    write_failures(out, {**{k: v for k, v in read_failures(out).items() if k not in ran}, **failures})
    return failures


def _in_turn(tasks: list[GridTask], placement: Placement, quiet: bool) -> dict[str, str]:
    placement.use_threads()
    console = Console(stderr=True, quiet=quiet)
    failures: dict[str, str] = {}
    for n, task in enumerate(tasks, 1):
        if task.finished():
            continue
        console.print(f"[bold][{n}/{len(tasks)}] {task.name}")
        for attempt in range(ATTEMPTS):
            try:
                task.work(*task.args, quiet=quiet)
                break
            except Exception as err:  # noqa: BLE001 - a failed task is reported; the others go on
                if attempt == ATTEMPTS - 1:
                    failures[task.name] = describe_failure(err)
    return failures


def describe_failure(err: BaseException) -> str:
    """One line: the error and where it was raised."""
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    return f"{type(err).__name__}: {err}{where}"


# ---------------------------------------------------------------------- Ray


def _ray():
    try:
        import ray
    except ImportError:
        raise MutualRLError(f"--workers > 1 runs the grid on Ray, which is not installed: {RAY_INSTALL_HINT}") from None
    return ray


def work_in_worker(work: Callable[..., None], args: tuple[Any, ...], threads: int) -> None:
    """The body of one Ray task: this task only, quietly, with `threads` torch threads."""
    import torch

    from mutualrl import output

    output.configure(verbose=False)
    torch.set_num_threads(threads)
    work(*args, quiet=True)


def _on_ray(tasks: list[GridTask], out: Path, placement: Placement, quiet: bool) -> dict[str, str]:
    ray = _ray()
    threads = placement.threads or max(1, (os.cpu_count() or 1) // placement.workers)
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=placement.address, num_cpus=None if placement.address else placement.workers * threads,
                     include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=True)
        except ConnectionError as err:
            raise MutualRLError(f"cannot reach the Ray cluster at {placement.address!r} ({err})") from None
    remote = ray.remote(work_in_worker).options(num_cpus=threads, num_gpus=placement.gpus_per_run,
                                                max_retries=ATTEMPTS - 1, retry_exceptions=True)
    todo = {remote.remote(t.work, t.args, threads): t for t in tasks if not t.finished()}
    failures: dict[str, str] = {}
    try:
        with _LiveLines(tasks, quiet) as lines:
            pending = list(todo)
            while pending:
                done, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
                for ref in done:
                    try:
                        ray.get(ref)
                        lines.ended.add(todo[ref].name)
                    except Exception as err:  # noqa: BLE001 - reported; the other tasks go on
                        failures[todo[ref].name] = describe_failure(getattr(err, "cause", None) or err)
                lines.refresh(failures)
    finally:
        if started_here:
            ray.shutdown()
    return failures


class _LiveLines:
    """One live line per task: status, frames over its runs, and the current run's rolling success."""

    def __init__(self, tasks: list[GridTask], quiet: bool):
        self.grid_tasks = tasks
        self.ended: set[str] = set()
        width = max(len(t.name) for t in tasks) if tasks else 10
        self.progress = Progress(TextColumn(f"{{task.description:<{width}}}"), BarColumn(),
                                 TextColumn("{task.fields[frames]}"), TextColumn("{task.fields[success]}"),
                                 TextColumn("{task.fields[status]}"),
                                 console=Console(stderr=True, quiet=quiet), disable=quiet)
        self.ids = {t.name: self.progress.add_task(t.name, total=sum(f for _, f in t.runs) or 1, frames="",
                                                   success="", status="waiting") for t in tasks}

    def __enter__(self) -> "_LiveLines":
        self.progress.__enter__()
        self.refresh({})
        return self

    def __exit__(self, *exc) -> None:
        self.refresh({})
        self.progress.__exit__(*exc)

    def refresh(self, failures: dict[str, str]) -> None:
        for task in self.grid_tasks:
            completed, last = 0, {}
            for directory, budget in task.runs:
                if (directory / "summary.json").is_file():
                    completed += budget
                    continue
                last = _last_row(RunDir(directory).metrics_path)
                completed += last.get("frames", 0)
                break
            if task.name in failures:
                status = "[red]failed"
            elif task.name in self.ended or task.finished():
                status = "[green]done"
            else:
                status = "running" if completed else "waiting"
            total = sum(f for _, f in task.runs)
            self.progress.update(self.ids[task.name], completed=completed if total else float(status.endswith("done")),
                                 frames=f"{completed:>9,}/{total:,} frames" if total else "",
                                 success=f"success {last['success_rate']:.2f}" if "success_rate" in last else "",
                                 status=status)


def _last_row(path: Path) -> dict[str, Any]:
    """The newest complete metrics row of a run (empty before its first iteration)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65_536))
            lines = f.read().splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {}

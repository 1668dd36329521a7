"""A grid of runs spread over Ray: a local Ray by default, an existing cluster by address.

Each run is one Ray task that declares the CPUs (its torch threads) and GPU it needs, trains in
its own worker process into the same directory a sequential grid uses, and is retried once if it
raises or its worker dies; a retry resumes from the run's newest checkpoint. The driver shows one
live line per run, read from the runs' own metrics files. On a cluster, `out` must be a path every
node can write (shared storage). Ray is an optional extra: the core package never imports it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from mutualrl.compare import ATTEMPTS, GridRun, describe_failure
from mutualrl.errors import MutualRLError
from mutualrl.tracking import RunDir

INSTALL_HINT = "pip install -e '.[ray]' (or pip install 'ray>=2.40')"


def _ray():
    try:
        import ray
    except ImportError:
        raise MutualRLError(f"--workers > 1 runs the grid on Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def train_in_worker(run_dir: str, config: dict[str, Any], threads: int) -> None:
    """The body of one Ray task: this run only, with `threads` torch threads."""
    import torch

    from mutualrl import output
    from mutualrl.compare import train_run
    from mutualrl.config import TrainConfig

    output.configure(verbose=False)
    torch.set_num_threads(threads)
    train_run(Path(run_dir), TrainConfig.from_dict(config), quiet=True)


def run_on_ray(grid: list[GridRun], out: Path, *, workers: int, threads: int | None = None, address: str | None = None,
               gpus_per_run: float = 0.0, quiet: bool = False) -> dict[str, str]:
    """Train the grid's runs on Ray, at most `workers` at once; returns {run: error} of those that failed twice."""
    ray = _ray()
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    if any(run.config.device == "cuda" for run in grid) and not gpus_per_run:
        gpus_per_run = 1.0
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, num_cpus=None if address else workers * threads, include_dashboard=False,
                     log_to_driver=False, logging_level="ERROR", configure_logging=True)
        except ConnectionError as err:
            raise MutualRLError(f"cannot reach the Ray cluster at {address!r} ({err})") from None
    task = ray.remote(train_in_worker).options(num_cpus=threads, num_gpus=gpus_per_run, max_retries=ATTEMPTS - 1,
                                               retry_exceptions=True)
    todo = {}
    for run in grid:
        run_dir = run.directory(out)
        if not (run_dir / "summary.json").is_file():
            todo[task.remote(str(run_dir.resolve()), run.config.to_dict(), threads)] = run
    failures: dict[str, str] = {}
    try:
        with _GridProgress(grid, out, quiet) as progress:
            pending = list(todo)
            while pending:
                done, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
                for ref in done:
                    try:
                        ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - reported; the other runs go on
                        failures[todo[ref].name] = describe_failure(getattr(err, "cause", None) or err)
                progress.refresh(failures)
    finally:
        if started_here:
            ray.shutdown()
    return failures


class _GridProgress:
    """One live line per run: status, frames and rolling success, read from its run directory."""

    def __init__(self, grid: list[GridRun], out: Path, quiet: bool):
        self.grid, self.out = grid, out
        self.progress = Progress(TextColumn("{task.description:<18}"), BarColumn(),
                                 TextColumn("{task.completed:>9,.0f}/{task.total:,.0f} frames"),
                                 TextColumn("success {task.fields[success]:.2f}"), TextColumn("{task.fields[status]}"),
                                 console=Console(stderr=True, quiet=quiet), disable=quiet)
        self.tasks = {run.name: self.progress.add_task(run.name, total=run.config.frames, status="waiting", success=0.0)
                      for run in grid}

    def __enter__(self) -> "_GridProgress":
        self.progress.__enter__()
        self.refresh({})
        return self

    def __exit__(self, *exc) -> None:
        self.refresh({})
        self.progress.__exit__(*exc)

    def refresh(self, failures: dict[str, str]) -> None:
        for run in self.grid:
            run_dir = run.directory(self.out)
            last = _last_row(RunDir(run_dir).metrics_path)
            if run.name in failures:
                status = "[red]failed"
            elif (run_dir / "summary.json").is_file():
                status = "[green]done"
            else:
                status = "running" if last else "waiting"
            self.progress.update(self.tasks[run.name], completed=last.get("frames", 0), status=status,
                                 success=last.get("success_rate", 0.0))


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

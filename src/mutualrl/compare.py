"""A comparison of modes over seeds: a grid of runs, trained one after another or in parallel on
Ray (`workers > 1`), then the report built from what is on disk.

Whichever way the grid is spread, each run lands in `out/MODE_seedN` with the same files; a run
already finished is kept, an interrupted one resumes from its checkpoint, a failing one is tried
once more and then reported (in `failures.json` and the report) while the others go on.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from mutualrl.config import TrainConfig
from mutualrl.errors import MutualRLError
from mutualrl.report import FAILURES, build_report
from mutualrl.tracking import RunDir

#: attempts per run: the first, and one retry
ATTEMPTS = 2


@dataclass
class GridRun:
    """One run of a grid: where it lives and what it trains."""

    name: str
    config: TrainConfig

    def directory(self, out: Path) -> Path:
        return out / self.name


def comparison_grid(base: TrainConfig, modes: list[str], seeds: int) -> list[GridRun]:
    return [GridRun(f"{mode}_seed{seed}", base.replace(mode=mode, seed=seed)) for mode in modes for seed in range(seeds)]


def train_run(run_dir: Path, config: TrainConfig, quiet: bool = True) -> None:
    """Train one run to its budget: skip it if finished, resume it if it has a checkpoint."""
    from mutualrl.loop import Trainer

    if (run_dir / "summary.json").is_file():
        return
    trainer = Trainer.resume(run_dir, quiet=quiet) if RunDir(run_dir).checkpoints() else Trainer(config, run_dir, quiet=quiet)
    trainer.train()


def run_comparison(base: TrainConfig, modes: list[str], seeds: int, out: Path, quiet: bool = False, *,
                   workers: int = 1, threads: int | None = None, ray_address: str | None = None,
                   gpus_per_run: float = 0.0) -> Path:
    """Train every mode x seed under `out` (as `MODE_seedN`) and write `out/report.md`.

    `workers > 1` (or a `ray_address`) spreads the runs over Ray; `threads` is each run's share
    of CPU threads (torch follows it), the same in either path so that results match."""
    if workers < 1:
        raise MutualRLError(f"--workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise MutualRLError(f"--threads must be >= 1, got {threads}")
    out = Path(out)
    RunDir(out).create()
    grid = comparison_grid(base, modes, seeds)
    if workers > 1 or ray_address:
        from mutualrl.parallel import run_on_ray

        failures = run_on_ray(grid, out, workers=workers, threads=threads, address=ray_address,
                              gpus_per_run=gpus_per_run, quiet=quiet)
    else:
        failures = run_in_turn(grid, out, threads=threads, quiet=quiet)
    (out / FAILURES).write_text(json.dumps(failures, indent=2))
    return build_report(out)


def run_in_turn(grid: list[GridRun], out: Path, threads: int | None = None, quiet: bool = False) -> dict[str, str]:
    """The runs one after another in this process; returns {run: error} for those that failed twice."""
    if threads is not None:
        torch.set_num_threads(threads)
    failures: dict[str, str] = {}
    for run in grid:
        with_retry(run.name, lambda: train_run(run.directory(out), run.config, quiet=quiet), failures)
    return failures


def with_retry(name: str, work: Callable[[], None], failures: dict[str, str]) -> None:
    """Do `work`, once more if it fails; if it fails again, record it in `failures` and go on."""
    for attempt in range(ATTEMPTS):
        try:
            work()
            return
        except Exception as err:  # noqa: BLE001 - a failed run is reported; the others go on
            if attempt == ATTEMPTS - 1:
                failures[name] = describe_failure(err)


def describe_failure(err: BaseException) -> str:
    """One line: the error and where it was raised."""
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    return f"{type(err).__name__}: {err}{where}"

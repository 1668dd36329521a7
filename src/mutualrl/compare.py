"""A comparison of modes over seeds: one run per mode x seed in `out/MODE_seedN`, trained by the
grid runner (in turn, or on Ray), then the report built from what is on disk."""

from __future__ import annotations

from pathlib import Path

from mutualrl.config import TrainConfig
from mutualrl.grid import GridTask, Placement, run_grid, train_run
from mutualrl.report import build_report
from mutualrl.tracking import RunDir, seeded_name


def comparison_grid(base: TrainConfig, modes: list[str], seeds: int, out: Path) -> list[GridTask]:
    tasks = []
    for mode in modes:
        for seed in range(seeds):
            name, config = seeded_name(mode, seed), base.replace(mode=mode, seed=seed)
            directory = (out / name).resolve()
            tasks.append(GridTask(name, train_run, (str(directory), config.to_dict()), ((directory, config.frames),)))
    return tasks


def run_comparison(base: TrainConfig, modes: list[str], seeds: int, out: Path, quiet: bool = False, *,
                   workers: int = 1, threads: int | None = None, ray_address: str | None = None,
                   gpus_per_run: float = 0.0) -> Path:
    """Train every mode x seed under `out` (as `MODE_seedN`) and write `out/report.md`.

    `workers > 1` (or a `ray_address`) spreads the runs over Ray; `threads` is each run's share
    of CPU threads (torch follows it), the same in either path so that results match."""
    placement = Placement(workers, threads, ray_address, gpus_per_run).for_device(base.device)
    out = Path(out)
    RunDir(out).create()
    run_grid(comparison_grid(base, modes, seeds, out), out, placement, quiet=quiet)
    return build_report(out)

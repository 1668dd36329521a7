"""A comparison of modes over seeds: every run trained (finished ones kept, interrupted ones
resumed from their checkpoints), then the report built from what is on disk."""

from __future__ import annotations

from pathlib import Path

from mutualrl.config import TrainConfig
from mutualrl.loop import Trainer
from mutualrl.report import build_report
from mutualrl.tracking import RunDir


def run_comparison(base: TrainConfig, modes: list[str], seeds: int, out: Path, quiet: bool = False) -> Path:
    """Train every mode x seed under `out` (as `MODE_seedN`) and write `out/report.md`."""
    for mode in modes:
        for seed in range(seeds):
            run_dir = out / f"{mode}_seed{seed}"
            if (run_dir / "summary.json").is_file():
                continue
            if RunDir(run_dir).checkpoints():
                trainer = Trainer.resume(run_dir, quiet=quiet)
            else:
                trainer = Trainer(base.replace(mode=mode, seed=seed), run_dir, quiet=quiet)
            trainer.train()
    return build_report(out)

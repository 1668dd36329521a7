"""The same comparison grid with --workers 1 and --workers 2 (Ray), the same threads per run.

Prints each grid's wall time, and whether every run's metrics (timings aside), held-out results
and the report's figures are the same both ways.

    python benchmarks/grid_workers.py [--modes rl,guided] [--teacher bot] [--seeds 2] [--frames 20480] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from mutualrl import output
from mutualrl.compare import run_comparison
from mutualrl.config import TrainConfig
from mutualrl.tracking import RunDir

TIMING_KEYS = ("fps", "wall_time")


def results(root: Path) -> dict[str, tuple]:
    """Per run: metrics without timings, the held-out results after training."""
    out = {}
    for run in sorted(p for p in root.iterdir() if (p / "summary.json").is_file()):
        rows = [{k: v for k, v in r.items() if not k.startswith("time_") and k not in TIMING_KEYS}
                for r in RunDir(run).read_metrics()]
        summary = json.loads((run / "summary.json").read_text())
        out[run.name] = (rows, summary["student_after"], summary.get("teacher_after"))
    return out


def report_figures(root: Path) -> list[str]:
    """The report's results table without its wall-time column."""
    lines = (root / "report.md").read_text().splitlines()
    return [line.rsplit("|", 2)[0] for line in lines if line.startswith("| ") and "frames to" not in line
            and line.count("|") > 8]


def main() -> None:
    output.configure()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="BabyAI-GoToRedBallNoDists-v0")
    parser.add_argument("--modes", default="rl,guided")
    parser.add_argument("--teacher", default="bot")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--frames", type=int, default=20_480)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run, the same both ways")
    args = parser.parse_args()
    base = TrainConfig(env_id=args.env, frames=args.frames).replace(teacher=args.teacher, eval_every=4,
                                                                     eval_episodes=10)
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        walls = {}
        for workers in (1, 2):
            start = time.perf_counter()
            run_comparison(base, modes, args.seeds, Path(tmp) / f"w{workers}", quiet=True, workers=workers,
                           threads=args.threads)
            walls[workers] = time.perf_counter() - start
            print(f"--workers {workers}: {len(modes) * args.seeds} runs of {args.frames:,} frames in {walls[workers]:.1f} s",
                  flush=True)
        same_runs = results(Path(tmp) / "w1") == results(Path(tmp) / "w2")
        same_report = report_figures(Path(tmp) / "w1") == report_figures(Path(tmp) / "w2")
    print(f"speed-up of --workers 2: {walls[1] / walls[2]:.2f}x (Ray's start included)")
    print(f"same per-run metrics (timings aside): {same_runs}; same report figures: {same_report}")


if __name__ == "__main__":
    main()

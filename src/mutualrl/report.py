"""The comparison report: `report.md` and plots from the finished runs under a directory.

Across 3 or more seeds, aggregates are interquartile means with 95% percentile-bootstrap
confidence intervals (the recipe of `rliable`, Agarwal et al. 2021); with fewer seeds, plain
means and the range.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import trim_mean

from mutualrl.config import MODES
from mutualrl.errors import MutualRLError
from mutualrl.tracking import ALONE, TIMERS, RunDir, frames_to_success

#: the runs of a grid that failed twice, {run: error}, written beside the report
FAILURES = "failures.json"


def load_runs(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Finished runs under `root`, grouped by mode: config, metrics rows and summary."""
    if not root.is_dir():
        raise MutualRLError(f"report directory {str(root)!r} does not exist")
    runs: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(root.iterdir()):
        summary = path / "summary.json"
        if not summary.is_file():
            continue
        run = RunDir(path)
        config = run.read_config()
        runs.setdefault(config.mode, []).append(
            {"name": path.name, "config": config, "rows": run.read_metrics(), "summary": json.loads(summary.read_text())})
    if not runs:
        raise MutualRLError(f"no finished runs (with summary.json) under {str(root)!r}")
    return {m: runs[m] for m in MODES if m in runs}


def aggregate_columns(matrix: np.ndarray, reps: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of (runs, k): IQM with a 95% percentile-bootstrap CI over runs for >= 3 runs
    (rliable's recipe for one task), else mean and range.

    The bootstrap is our own, seeded, so a report rebuilds identically: rliable 1.2 over arch 7
    ignores the random state it is given (measured: the same data gave different intervals).
    """
    x = np.asarray(matrix, dtype=float)
    if len(x) < 3:
        return x.mean(0), x.min(0), x.max(0)
    rng = np.random.default_rng(0)
    samples = x[rng.integers(0, len(x), size=(reps, len(x)))]  # (reps, runs, k)
    iqms = trim_mean(samples, 0.25, axis=1)
    return trim_mean(x, 0.25, axis=0), np.percentile(iqms, 2.5, axis=0), np.percentile(iqms, 97.5, axis=0)


def aggregate(values: list[float]) -> tuple[float, float, float]:
    """`aggregate_columns` of one value per run."""
    centre, low, high = aggregate_columns(np.asarray(values, dtype=float)[:, None])
    return float(centre[0]), float(low[0]), float(high[0])


def _curve(runs: list[dict[str, Any]], key: str, grid: np.ndarray) -> np.ndarray:
    """Each run's `key` over frames, interpolated onto `grid` (rows: runs)."""
    curves = []
    for run in runs:
        rows = [r for r in run["rows"] if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]
        if rows:
            curves.append(np.interp(grid, [r["frames"] for r in rows], [r[key] for r in rows]))
    return np.array(curves)


def _plot(runs_by_mode, key: str, ylabel: str, path: Path, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for mode, runs in runs_by_mode.items():
        end = max(r["rows"][-1]["frames"] for r in runs if r["rows"])
        grid = np.linspace(0, end, 40)
        curves = _curve(runs, key, grid)
        if curves.size == 0:
            continue
        centre, low, high = aggregate_columns(curves)
        ax.plot(grid, centre, label=f"{mode} ({len(curves)} seeds)")
        ax.fill_between(grid, low, high, alpha=0.2)
        drawn = True
    if drawn:
        ax.set_xlabel("frames")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.set_ylim(-0.02, 1.02)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def _fmt(centre: float, low: float, high: float, digits: int = 2) -> str:
    return f"{centre:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]"


def build_report(root: Path) -> Path:
    """Write `root/report.md` and its PNG plots from the finished runs under `root`."""
    runs_by_mode = load_runs(root)
    lines = ["# mutualrl comparison", ""]
    first = next(iter(runs_by_mode.values()))[0]["config"]
    seeds = {m: len(r) for m, r in runs_by_mode.items()}
    advice = next((r[0]["config"].guidance.advice for m, r in runs_by_mode.items() if m != "rl"), first.guidance.advice)
    lines += [f"Environment `{first.env_id}`, teacher `{first.teacher.name}`, `{advice}` advice, frames per run {first.frames:,}, seeds per mode "
              + ", ".join(f"{m}: {n}" for m, n in seeds.items()) + ".",
              "Aggregates: interquartile mean with a 95% percentile-bootstrap CI over seeds where there are 3 or more; "
              "otherwise mean [min, max]. A run that never reached 0.9 counts as its frame budget. "
              "Frames to 0.9 (training): the rolling success of the training episodes, where the student acts on the "
              "advice it is shown. (student alone): its held-out greedy success without advice, every `eval_every` "
              "iterations.", ""]
    if _plot(runs_by_mode, "success_rate", "rolling success rate (100 episodes)", root / "student_success.png",
             "Student success while training"):
        lines += ["![student success](student_success.png)", ""]
    teacher_modes = {m: r for m, r in runs_by_mode.items() if m != "rl"}
    for key, label, file in (("teacher_success_rate", "teacher success alone", "teacher_success.png"),
                             ("advice_accuracy", "advice accuracy (agreement with the BabyAI bot)", "advice_accuracy.png"),
                             ("subgoal_accuracy", "subgoal accuracy (among the BabyAI bot's subgoals)", "subgoal_accuracy.png")):
        if teacher_modes and _plot(teacher_modes, key, label, root / file, label[0].upper() + label[1:] + ", held-out seeds"):
            lines += [f"![{label}]({file})", ""]
    lines += ["| mode | frames to 0.9 (training) | reached | frames to 0.9 (student alone) | reached | final success | "
              "student success after (eval) | teacher success before -> after | advice (subgoal) accuracy before -> after | "
              "wall time (s) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for mode, runs in runs_by_mode.items():
        columns = []
        for key in ("success_rate", ALONE):
            reached = [frames_to_success(r["rows"], 0.9, key) for r in runs]
            to_09 = [f if f is not None else r["config"].frames for f, r in zip(reached, runs)]
            columns.append(f"{_fmt(*aggregate(to_09), digits=0)} | {sum(f is not None for f in reached)}/{len(runs)}")
        final = [r["rows"][-1]["success_rate"] for r in runs]
        after = [r["summary"]["student_after"]["success_rate"] for r in runs]
        wall = [r["summary"]["wall_time"] for r in runs]
        if "teacher_before" in runs[0]["summary"]:
            def before_after(key: str) -> str:  # seed means; the bot's accuracy exists on BabyAI levels only
                values = [[r["summary"][f"teacher_{when}"].get(key, math.nan) for r in runs] for when in ("before", "after")]
                return f"{np.mean(values[0]):.2f} -> {np.mean(values[1]):.2f}"

            subgoals = "subgoal_accuracy" in runs[0]["summary"]["teacher_before"]  # the episodes were the bot's
            teacher = "-" if subgoals else before_after("success_rate")
            accuracy = f"({before_after('subgoal_accuracy')})" if subgoals else before_after("advice_accuracy")
        else:
            teacher = accuracy = "-"
        lines.append(f"| {mode} | {columns[0]} | {columns[1]} | "
                     f"{_fmt(*aggregate(final))} | {_fmt(*aggregate(after))} | {teacher} | {accuracy} | {_fmt(*aggregate(wall), digits=0)} |")
    lines += ["", "Time split per mode (mean seconds per run):", "",
              "| mode | " + " | ".join(k[5:] for k in TIMERS) + " |", "|---|" + "---|" * len(TIMERS)]
    for mode, runs in runs_by_mode.items():
        totals = [np.mean([sum(row.get(k, 0.0) for row in r["rows"]) for r in runs]) for k in TIMERS]
        lines.append(f"| {mode} | " + " | ".join(f"{t:.1f}" for t in totals) + " |")
    failures = json.loads((root / FAILURES).read_text()) if (root / FAILURES).is_file() else {}
    if failures:
        lines += ["", f"Missing runs ({len(failures)}): they failed twice; the figures above are without them. "
                  "Re-running the same command retries them.", ""]
        lines += [f"- `{name}`: {error}" for name, error in sorted(failures.items())]
    path = root / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path

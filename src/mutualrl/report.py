"""Reports: `report.md` and plots of a comparison or a curriculum, from its run directories alone
(this module imports nothing that trains, so a report can be rebuilt anywhere the runs are).

Across 3 or more seeds, aggregates are interquartile means with 95% percentile-bootstrap
confidence intervals (the recipe of `rliable`, Agarwal et al. 2021); with fewer seeds, plain
means and the range.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mutualrl.config import MODES, TrainConfig, read_yaml_mapping
from mutualrl.errors import MutualRLError
from mutualrl.tracking import (ALONE, CURRICULUM_FILE, TIMERS, RunDir, frames_to_success, parse_seeded_name,
                               read_failures, seeded_name, stage_label)


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
    from scipy.stats import trim_mean  # here: scipy.stats takes a second to import, and `mutualrl --help` none

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

            subgoals = "subgoal_accuracy" in runs[0]["summary"]["teacher_before"]
            teacher = before_after("success_rate")
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
    failures = read_failures(root)
    if failures:
        lines += ["", f"Missing runs ({len(failures)}): they failed twice; the figures above are without them. "
                  "Re-running the same command retries them.", ""]
        lines += [f"- `{name}`: {error}" for name, error in sorted(failures.items())]
    path = root / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ curriculum

#: each arm with a teacher, and the arm without one it must beat (frames to target, stage by stage)
BASELINES = {"mutual": "rl", "mutual-carry": "rl-carry", "bot": "rl", "bot-carry": "rl-carry"}


def _load_stage(directory: Path, budget: int) -> dict[str, Any] | None:
    summary = directory / "summary.json"
    if not summary.is_file():
        return None
    values = json.loads(summary.read_text())
    return {"summary": values, "rows": RunDir(directory).read_metrics(),
            "to_target": values["frames"] if values.get("reached_target") else budget}


@dataclass(frozen=True)
class SavedStage:
    """A curriculum stage as its saved file tells it."""

    label: str
    frames: int
    target: float


def load_chains(root: Path) -> tuple[str, list[SavedStage], dict[str, list[list[dict[str, Any] | None]]]]:
    """The teacher and stages of the curriculum run under `root` and, per arm (baselines first),
    each seed's finished stages (None where not yet), read from its directories alone."""
    path = root / CURRICULUM_FILE
    if not path.is_file():
        raise MutualRLError(f"{str(root)!r} holds no curriculum run (no {CURRICULUM_FILE})")
    saved = read_yaml_mapping(path, "curriculum file")
    stages = [SavedStage(stage_label(i, s["env_id"]), int(s["frames"]), float(s["target"]))
              for i, s in enumerate(saved.get("stages") or [])]
    teacher = TrainConfig.from_dict({k: v for k, v in saved.items() if k != "stages"}).teacher.name
    found: dict[str, list[int]] = {}
    for chain in root.iterdir():
        parsed = parse_seeded_name(chain.name)
        if parsed and chain.is_dir():
            found.setdefault(parsed[0], []).append(parsed[1])
    chains: dict[str, list[list[dict[str, Any] | None]]] = {}
    for arm in sorted(found, key=lambda a: (a not in BASELINES.values(), a)):
        for seed in sorted(found[arm]):
            chains.setdefault(arm, []).append([_load_stage(root / seeded_name(arm, seed) / s.label, s.frames) for s in stages])
    return teacher, stages, chains


def _plot_curriculum(levels: list[SavedStage], chains, path: Path) -> None:
    """Student alone (held-out) against cumulative frames, one line per seed, stage ends marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for colour, (arm, seeds) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], chains.items()):
        for n, stages in enumerate(seeds):
            offset, xs, ys, ends = 0, [], [], []
            for stage in (s for s in stages if s is not None):
                xs.append(offset)
                ys.append(stage["summary"]["student_before"]["success_rate"])
                for row in stage["rows"]:
                    if ALONE in row:
                        xs.append(offset + row["frames"])
                        ys.append(row[ALONE])
                offset += stage["summary"]["frames"]
                xs.append(offset)
                ys.append(stage["summary"]["student_after"]["success_rate"])
                ends.append((xs[-1], ys[-1]))
            ax.plot(xs, ys, color=colour, alpha=0.8, lw=1.2, label=arm if n == 0 else None)
            if ends:
                ax.scatter(*zip(*ends), color=colour, marker="|", s=250)
    ax.set_xlabel("cumulative frames (| marks the end of a stage)")
    ax.set_ylabel("student alone, held-out success")
    ax.set_title("Curriculum: " + " -> ".join(level.label.split("_", 1)[1] for level in levels))
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_curriculum_report(root: Path) -> Path:
    """Write `root/report.md` and `root/curriculum_success.png` from a curriculum run's finished stages."""
    teacher_name, stages, chains = load_chains(root)
    zero = {}
    for file in sorted((root / "zero_shot").glob("seed*.json")):
        for label, result in json.loads(file.read_text()).items():
            zero.setdefault(label, []).append(result)
    lines = ["# mutualrl curriculum", "",
             f"Teacher `{teacher_name}`, subgoal advice, all seven actions on every level. Arms and "
             "seeds: " + ", ".join(f"{arm}: {len(seeds)}" for arm, seeds in chains.items()) + ".",
             "A stage ends when the student alone (held-out, greedy, no advice) reaches its target at an evaluation, "
             "or when its frames are spent; a stage that missed its target counts as its budget. Aggregates: "
             "interquartile mean with a 95% percentile-bootstrap CI over seeds where there are 3 or more, otherwise "
             "mean [min, max]. Teacher alone: its success when the BabyAI bot's planner carries out its subgoals "
             "(the teacher chooses what, the bot finds the way). Teacher accuracy: how often its subgoal is one the "
             "bot's stack means, along the bot's held-out episodes. *Before*: the carried teacher on the new level "
             "before training on it; *zero-shot*: the untaught teacher there.", ""]
    if chains:
        _plot_curriculum(stages, chains, root / "curriculum_success.png")
        lines += ["![student alone against cumulative frames](curriculum_success.png)", ""]
    lines += ["| stage | budget, target | arm | frames to target | reached | vs baseline | student alone at the end | "
              "teacher alone before -> after | teacher accuracy before -> after | zero-shot teacher alone | "
              "zero-shot accuracy |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, stage in enumerate(stages):
        label, centres = stage.label, {}
        for arm, seeds in chains.items():
            done = [s[i] for s in seeds if s[i] is not None]
            if not done:
                continue
            frames = aggregate([s["to_target"] for s in done])
            centres[arm] = frames[0]
            reached = sum(bool(s["summary"].get("reached_target")) for s in done)
            alone = aggregate([s["summary"]["student_after"]["success_rate"] for s in done])
            base = BASELINES.get(arm)
            ratio = f"{frames[0] / centres[base]:.2f} x {base}" if base in centres else "-"
            teacher = "- | -"
            if "teacher_before" in done[0]["summary"]:
                teacher = " | ".join(" -> ".join(f"{np.mean([s['summary'][f'teacher_{w}'][key] for s in done]):.2f}"
                                                 for w in ("before", "after")) for key in ("success_rate", "subgoal_accuracy"))
            zero_shot = " | ".join(f"{np.mean([z[key] for z in zero[label]]):.2f}" if label in zero else "-"
                                   for key in ("success_rate", "subgoal_accuracy"))
            lines.append(f"| {label} | {stage.frames:,}, {stage.target:.2f} | {arm} | {_fmt(*frames, digits=0)} | "
                         f"{reached}/{len(done)} | {ratio} | {_fmt(*alone)} | {teacher} | {zero_shot} |")
    failures = read_failures(root)
    if failures:
        lines += ["", f"Failed twice ({len(failures)}); re-running the same command retries them:", ""]
        lines += [f"- `{name}`: {error}" for name, error in sorted(failures.items())]
    path = root / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path

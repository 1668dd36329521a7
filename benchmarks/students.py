"""Each student architecture learning alone (`rl`), level by level: how many frames until its
held-out greedy success reaches 0.9 (a run stops there), or its success at the budget, and its
frames per second. IQM and 95% bootstrap CI over seeds. With `--bot-subgoals`, also each student
guided by the BabyAI bot's subgoals (`--mode guided --advice subgoal --teacher bot`), judged alone.

    python benchmarks/students.py [--students mlp,film,film:64] [--levels GoToRedBallNoDists,GoToLocal] \
        [--seeds 3] [--bot-subgoals] [--workers 1] [--out runs/bench-students]

A student is an architecture, or ARCHITECTURE:MEMORY for one with an LSTM memory of that size.

Each run is a task of the grid runner under `--out` (`STUDENT_LEVEL_seedN`): re-running the same
command skips finished runs and resumes the others; `--workers 2` trains two at once on Ray.
Budgets: 1M frames on GoToLocal, 300k elsewhere (`--frames` overrides them all).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from mutualrl import output
from mutualrl.config import TrainConfig
from mutualrl.grid import GridTask, Placement, run_grid, train_run
from mutualrl.report import aggregate
from mutualrl.tracking import ALONE, RunDir, frames_to_success, seeded_name

LEVELS = ("GoToRedBallNoDists", "GoToRedBall", "GoToLocal", "PickupLoc", "PutNextLocal")
BUDGETS = {"GoToLocal": 1_000_000}
DEFAULT_BUDGET = 300_000


def student_settings(student: str) -> dict[str, str | int]:
    """`film:64` -> the config fields `student: film, student_memory: 64` (no memory without `:N`)."""
    architecture, _, memory = student.partition(":")
    return {"student": architecture, "student_memory": int(memory or 0)}


def label(student: str) -> str:
    """`film:64` -> `film-memory64`, a name for run directories."""
    architecture, _, memory = student.partition(":")
    return f"{architecture}-memory{memory}" if memory else architecture


#: how each arm trains: alone, or guided by the bot's subgoals
ARMS = {"": dict(mode="rl"), "+bot-subgoals": dict(mode="guided", advice="subgoal", teacher="bot")}


def grid(students: list[str], arms: list[str], levels: list[str], seeds: int, out: Path,
         frames: int | None) -> list[GridTask]:
    tasks = []
    for level, student, arm, seed in itertools.product(levels, students, arms, range(seeds)):
        config = TrainConfig(env_id=f"BabyAI-{level}-v0", seed=seed, frames=frames or BUDGETS.get(level, DEFAULT_BUDGET),
                             **student_settings(student)).replace(
            eval_every=10, eval_episodes=20, target_success=0.9, checkpoint_every=20, **ARMS[arm]).validate()
        directory = (out / seeded_name(f"{label(student)}{arm}_{level}", seed)).resolve()
        tasks.append(GridTask(directory.name, train_run, (str(directory), config.to_dict()),
                              ((directory, config.frames),)))
    return tasks


def main() -> None:
    output.configure()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", default="mlp,film")
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bot-subgoals", action="store_true", help="also each student guided by the bot's subgoals")
    parser.add_argument("--frames", type=int, default=None, help="one budget for every level")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/bench-students")
    args = parser.parse_args()
    students, levels = args.students.split(","), args.levels.split(",")
    out = Path(args.out)
    RunDir(out).create()
    arms = ["", "+bot-subgoals"] if args.bot_subgoals else [""]
    tasks = grid(students, arms, levels, args.seeds, out, args.frames)
    failures = run_grid(tasks, out, Placement(args.workers, args.threads), quiet=False)
    print(f"{'level':<20} {'student':<28} {'frames to 0.9 alone (IQM [95% CI])':<40} {'reached':<8} "
          f"{'success at the end':<22} frames/s")
    for level, student, arm in itertools.product(levels, students, arms):
        name = f"{label(student)}{arm}"
        runs = [RunDir(t.runs[0][0]) for t in tasks if t.name.startswith(f"{name}_{level}_")
                and t.name not in failures and (t.runs[0][0] / "summary.json").is_file()]
        if not runs:
            continue
        budgets = [r.read_config().frames for r in runs]
        reached = [frames_to_success(r.read_metrics(), 0.9, ALONE) for r in runs]
        summaries = [json.loads((r.path / "summary.json").read_text()) for r in runs]
        to_target = aggregate([f if f is not None else b for f, b in zip(reached, budgets)])
        alone = aggregate([s["student_after"]["success_rate"] for s in summaries])
        fps = aggregate([s["frames"] / s["wall_time"] for s in summaries])
        print(f"{level:<20} {name:<28} {to_target[0]:>9,.0f} [{to_target[1]:,.0f}, {to_target[2]:,.0f}]"
              f"{'':<12} {sum(f is not None for f in reached)}/{len(runs):<6} "
              f"{alone[0]:.2f} [{alone[1]:.2f}, {alone[2]:.2f}]{'':<6} {fps[0]:,.0f}")


if __name__ == "__main__":
    main()

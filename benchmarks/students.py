"""Each student architecture learning a level, measured our way and BabyAI's way, with IQM and 95%
bootstrap CI over seeds. Arms: alone (`rl`); with `--bot-subgoals`, guided by the BabyAI bot's
subgoals (`--mode guided --advice subgoal --teacher bot`); with `--mutual`, `mutual --advice subgoal`
with the embedded teacher (SmolLM2-135M). Every arm is judged alone.

    python benchmarks/students.py [--students mlp,film,film:64] [--levels GoToRedBallNoDists,GoToLocal] \
        [--seeds 3] [--bot-subgoals] [--mutual] [--frames N] [--workers 1] [--out runs/bench-students] [--markdown]

Per level and arm:
- ours: frames until the held-out greedy success of the student alone (100 episodes, every 10,240
  frames) first reaches 0.9;
- BabyAI's (Chevalier-Boisvert et al. 2019; Hui et al. 2020): episodes and frames until the success
  of the last 100 training episodes (sampled actions, with whatever advice the arm shows) first
  reaches 0.99, beside BabyAI 1.1's published RL figure where one is known, and the ratio;
- the final held-out greedy success of the student alone on 500 episodes;
- frames per second, and each arm's episodes to 0.99 over `rl`'s.

A run stops once both targets are reached, or at its budget (then a missed target counts as the
budget, shown with ">"). A student is an architecture, or ARCHITECTURE:MEMORY for one with an
LSTM memory of that size.

Each run is a task of the grid runner under `--out` (`STUDENT_LEVEL_seedN`): re-running the same
command skips finished runs and resumes the others; `--workers 2` trains two at once on Ray.
Budgets: 1M frames on GoToLocal, 300k elsewhere (`--frames` overrides them all).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mutualrl import output
from mutualrl.config import TrainConfig
from mutualrl.envs import FULL_ACTIONS
from mutualrl.evaluation import evaluate_student
from mutualrl.grid import GridTask, Placement, run_grid, train_run
from mutualrl.report import aggregate
from mutualrl.students import load_student
from mutualrl.tracking import ALONE, RunDir, frames_to_success, seeded_name

LEVELS = ("GoToRedBallNoDists", "GoToRedBall", "GoToLocal", "PickupLoc", "PutNextLocal")
BUDGETS = {"GoToLocal": 1_000_000}
DEFAULT_BUDGET = 300_000
#: BabyAI 1.1's RL sample efficiency (episodes until 0.99 training success), as third-party notes
#: transcribe Hui et al. 2020 (arXiv 2007.12770); the paper's table could not be read where this was written
PUBLISHED_EPISODES = {"GoToRedBall": 177_000, "GoToLocal": 611_000, "PickupLoc": 982_000, "PutNextLocal": 876_000}
HELD_OUT, BABYAI_TARGET, FINAL_EPISODES = 100, 0.99, 500


def student_settings(student: str) -> dict[str, str | int]:
    """`film:64` -> the config fields `student: film, student_memory: 64` (no memory without `:N`)."""
    architecture, _, memory = student.partition(":")
    return {"student": architecture, "student_memory": int(memory or 0)}


def label(student: str) -> str:
    """`film:64` -> `film-memory64`, a name for run directories."""
    architecture, _, memory = student.partition(":")
    return f"{architecture}-memory{memory}" if memory else architecture


#: how each arm trains: alone, guided by the bot's subgoals, or with the embedded teacher both ways
ARMS = {"": dict(mode="rl"), "+bot-subgoals": dict(mode="guided", advice="subgoal", teacher="bot"),
        "+mutual-subgoals": dict(mode="mutual", advice="subgoal", teacher="smollm2")}


def grid(students: list[str], arms: list[str], levels: list[str], seeds: int, out: Path,
         frames: int | None) -> list[GridTask]:
    tasks = []
    for level, student, arm, seed in itertools.product(levels, students, arms, range(seeds)):
        config = TrainConfig(env_id=f"BabyAI-{level}-v0", seed=seed, frames=frames or BUDGETS.get(level, DEFAULT_BUDGET),
                             **student_settings(student)).replace(
            eval_every=10, eval_episodes=HELD_OUT, target_success=0.9, target_training_success=BABYAI_TARGET,
            teacher_eval_every=0, checkpoint_every=20, **ARMS[arm]).validate()
        directory = (out / seeded_name(f"{label(student)}{arm}_{level}", seed)).resolve()
        tasks.append(GridTask(directory.name, train_run, (str(directory), config.to_dict()),
                              ((directory, config.frames),)))
    return tasks


def final_success(run: RunDir) -> float:
    """The held-out greedy success of the run's student alone on `FINAL_EPISODES` episodes (kept in the run)."""
    kept = run.path / f"final_{FINAL_EPISODES}.json"
    if not kept.is_file():
        config, model = load_student(run.path)
        result = evaluate_student(model, config.env_id, FINAL_EPISODES, config.seed,
                                  actions=FULL_ACTIONS[: model.num_actions])
        kept.write_text(json.dumps({"success_rate": result.success_rate}))
    return json.loads(kept.read_text())["success_rate"]


def babyai_units(rows: list[dict]) -> tuple[int, int] | None:
    """Episodes and frames at the first iteration whose training success over the last 100 episodes
    reached BabyAI's 0.99 (None if none did)."""
    frames = frames_to_success(rows, BABYAI_TARGET)
    return None if frames is None else (next(r["episodes"] for r in rows if r["frames"] == frames), frames)


def figure(values: list[float], reached: int, runs: int, digits: str = ",.0f") -> str:
    """IQM [95% CI], with ">" where some run missed (its value then the budget's)."""
    centre, low, high = aggregate(values)
    return f"{'>' if reached < runs else ''}{centre:{digits}} [{low:{digits}}, {high:{digits}}] ({reached}/{runs})"


def main() -> None:
    output.configure()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", default="mlp,film")
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bot-subgoals", action="store_true", help="also each student guided by the bot's subgoals")
    parser.add_argument("--mutual", action="store_true", help="also mutual --advice subgoal with the embedded teacher")
    parser.add_argument("--frames", type=int, default=None, help="one budget for every level")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/bench-students")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for docs/results.md)")
    args = parser.parse_args()
    students, levels = args.students.split(","), args.levels.split(",")
    out = Path(args.out)
    RunDir(out).create()
    arms = [""] + ["+bot-subgoals"] * args.bot_subgoals + ["+mutual-subgoals"] * args.mutual
    tasks = grid(students, arms, levels, args.seeds, out, args.frames)
    failures = run_grid(tasks, out, Placement(args.workers, args.threads), quiet=False)
    columns = ("level", "student and arm", "frames to 0.9 alone", "episodes to 0.99", "frames to 0.99",
               "BabyAI 1.1 episodes", "ours / BabyAI", "/ rl", f"alone, {FINAL_EPISODES} episodes", "frames/s")
    table_rows = []
    for level, student in itertools.product(levels, students):
        rl = None  # rl's episodes to 0.99 (IQM) and whether every run reached it
        for arm in arms:
            name = f"{label(student)}{arm}"
            runs = [RunDir(t.runs[0][0]) for t in tasks if t.name.startswith(f"{name}_{level}_")
                    and t.name not in failures and (t.runs[0][0] / "summary.json").is_file()]
            if not runs:
                continue
            metrics = [r.read_metrics() for r in runs]
            summaries = [json.loads((r.path / "summary.json").read_text()) for r in runs]
            alone = [frames_to_success(rows, 0.9, ALONE) for rows in metrics]
            babyai = [babyai_units(rows) for rows in metrics]
            episodes = [b[0] if b else rows[-1]["episodes"] for b, rows in zip(babyai, metrics)]
            reached = sum(b is not None for b in babyai)
            centre, every = aggregate(episodes)[0], reached == len(runs)
            published = PUBLISHED_EPISODES.get(level)
            rl = (centre, every) if not arm else rl
            table_rows.append([level, name, figure([a or s["frames"] for a, s in zip(alone, summaries)],
                                             sum(a is not None for a in alone), len(runs)),
                         figure(episodes, reached, len(runs)),
                         figure([b[1] if b else s["frames"] for b, s in zip(babyai, summaries)], reached, len(runs)),
                         f"{published:,}" if published else "-",
                         f"{'' if every else '>'}{centre / published:.2f}" if published else "-",
                         ratio(centre, every, *rl) if arm and rl else "-",
                         figure([final_success(r) for r in runs], len(runs), len(runs), ".2f"),
                         f"{aggregate([s['frames'] / s['wall_time'] for s in summaries])[0]:,.0f}"])
    if args.markdown:
        print("\n".join("| " + " | ".join(row) + " |" for row in [list(columns), ["---"] * len(columns), *table_rows]))
        return
    table = Table(title="ours: frames to 0.9 alone (100 held-out greedy episodes); BabyAI's: episodes and frames to "
                        "0.99 training success (last 100 episodes); IQM [95% CI] (runs reaching it)")
    for column in columns:
        table.add_column(column)
    for row in table_rows:
        table.add_row(*row)
    Console(width=250).print(table)


def ratio(episodes: float, every: bool, rl_episodes: float, rl_every: bool) -> str:
    """An arm's episodes to 0.99 over rl's, a bound where one side missed (its count then its last)."""
    if not every and not rl_every:
        return "?"
    return f"{'>' if not every else '<' if not rl_every else ''}{episodes / rl_episodes:.2f}"


if __name__ == "__main__":
    main()

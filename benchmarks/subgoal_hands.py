"""A subgoal teacher acting alone through the BabyAI bot's planner (`SubgoalHands`), level by level:
its success and its subgoal accuracy, with all seven actions (as in a curriculum).

The bot's own subgoals through the same hands are the ceiling of this measure; a tiny random
teacher is its floor.

    python benchmarks/subgoal_hands.py [--teachers bot,tiny] [--episodes 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from mutualrl import output
from mutualrl.envs import task_actions
from mutualrl.evaluation import evaluate_subgoals
from mutualrl.teachers import make_teacher

LEVELS = ("BabyAI-GoToRedBallNoDists-v0", "BabyAI-GoToRedBall-v0", "BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0",
          "BabyAI-PutNextLocal-v0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", default="bot,tiny")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    output.configure()
    table = Table(title=f"teacher alone through the bot's planner ({args.episodes} held-out episodes, seed {args.seed})")
    for column in ("teacher", "level", "success", "subgoal accuracy", "seconds"):
        table.add_column(column)
    for name in args.teachers.split(","):
        teacher = make_teacher(name, seed=args.seed)
        for env_id in LEVELS:
            start = time.perf_counter()
            result = evaluate_subgoals(teacher, env_id, args.episodes, args.seed, task_actions(env_id, "full"))
            table.add_row(name, env_id, f"{result.success_rate:.2f}", f"{result.subgoal_accuracy:.2f}",
                          f"{time.perf_counter() - start:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()

"""The ceiling of the subgoal language: the BabyAI bot's own subgoals, read into the language and
carried out by its planner (`SubgoalHands`), against the bot acting alone, level by level.

A level's ratio is the success through the hands over the bot's own; the total pools every level
the bot solves. With `--clozes`, also the ceiling of a text teacher's questions: the bot answering
the clozes a text teacher is asked (the mission's, and on levels with locked doors the next
step's, `steps`), its subgoal accuracy and success through the hands. Rows are appended to `--out`
(JSON lines) as they come.

    python benchmarks/subgoal_ceiling.py [--levels all|ladder|ID,ID] [--episodes 50] [--seed 0] [--clozes] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console
from rich.table import Table

from mutualrl import output
from mutualrl.envs import registered_env_ids, task_actions
from mutualrl.evaluation import evaluate_subgoals, evaluate_teacher
from mutualrl.teachers import BotTeacher

LADDER = ("BabyAI-GoToLocal-v0", "BabyAI-OpenDoor-v0", "BabyAI-UnlockLocal-v0", "BabyAI-UnlockPickup-v0",
          "BabyAI-BlockedUnlockPickup-v0", "BabyAI-KeyCorridorS3R1-v0", "BabyAI-GoToObjMazeS4-v0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="all")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clozes", action="store_true", help="also the bot answering a text teacher's clozes")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    output.configure()
    levels = {"all": [e for e in registered_env_ids() if e.startswith("BabyAI-")], "ladder": list(LADDER)}.get(
        args.levels) or args.levels.split(",")
    table = Table(title=f"the bot's subgoals through its planner ({args.episodes} held-out episodes, seed {args.seed})")
    for column in ("level", "bot alone", "its subgoals", "ratio", *(("clozes: accuracy", "clozes: success")
                                                                     if args.clozes else ()), "seconds"):
        table.add_column(column)
    own = hands = 0.0
    for env_id in levels:
        start = time.perf_counter()
        alone = evaluate_teacher(BotTeacher(), env_id, args.episodes, args.seed, task_actions(env_id)).success_rate
        # where the bot cannot plan the level (KeyInBox), its subgoals are not measured: no ceiling to reach
        told = evaluate_subgoals(BotTeacher(), env_id, args.episodes, args.seed).success_rate if alone > 0 else None
        asked = evaluate_subgoals(BotTeacher(through_clozes=True), env_id, args.episodes, args.seed) \
            if args.clozes and told is not None else None
        seconds = time.perf_counter() - start
        if told is not None:
            own, hands = own + alone, hands + told
        ratio = f"{told / alone:.2f}" if told is not None else "-"
        clozes = () if not args.clozes else ("-", "-") if asked is None else (
            f"{asked.subgoal_accuracy:.3f}", f"{asked.success_rate:.2f}")
        table.add_row(env_id, f"{alone:.2f}", "-" if told is None else f"{told:.2f}", ratio, *clozes, f"{seconds:.1f}")
        if args.out:
            row = {"level": env_id, "bot": alone, "subgoals": told, "seconds": seconds}
            if asked is not None:
                row.update(clozes_accuracy=asked.subgoal_accuracy, clozes_success=asked.success_rate)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    table.add_row("levels the bot solves, pooled", f"{own:.2f}", f"{hands:.2f}", f"{hands / own:.3f}" if own else "-",
                  *(("", "") if args.clozes else ()), "")
    Console().print(table)


if __name__ == "__main__":
    main()

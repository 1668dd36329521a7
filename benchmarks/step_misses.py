"""Where the teacher's subgoal is not the bot's: the states it misses, grouped, most frequent first.

Along the BabyAI bot's own held-out episodes (`evaluation.subgoal_agreement`, the subgoal accuracy
of `mutualrl eval --advice subgoal`), each state where the teacher's most likely subgoal is not in
the bot's stack is counted by what the teacher said, the bot's stack and the facts of the state
(`facts.state_facts`). The groups leave the colours out: the teacher's subgoal, the bot's first and
what the agent carries. Read them before changing a step: a group is the teacher's error, or an
order of the steps that the bot takes and that is not the only one.

    python benchmarks/step_misses.py BabyAI-KeyCorridorS3R1-v0 [--teacher smollm2] [--teacher-from RUN] \
        [--episodes 10] [--seed 0] [--top 15]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

from rich.console import Console
from rich.table import Table

from mutualrl import output
from mutualrl.envs import registered_env_ids
from mutualrl.evaluation import subgoal_agreement
from mutualrl.subgoals import COLOURS
from mutualrl.teachers import make_teacher
from mutualrl.tracking import RunDir


def kind(said: str) -> str:
    """'pick up the key' from 'pick up the red key'."""
    return " ".join(word for word in said.split() if word not in COLOURS)


def carrying(facts: str) -> str:
    held = re.match(r"You carry (?:an? )?(?:\w+ )?(\w+)\.", facts)
    return held[1] if held else "nothing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env", help="a BabyAI level, e.g. BabyAI-KeyCorridorS3R1-v0")
    parser.add_argument("--teacher", default="smollm2")
    parser.add_argument("--teacher-from", default=None, help="the run directory whose learnt teacher is read")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=15, help="how many groups and states to show")
    args = parser.parse_args()
    if not args.env.startswith("BabyAI-") or args.env not in registered_env_ids():
        parser.error(f"unknown level {args.env!r}: a BabyAI level is needed (the bot is the reference), e.g. "
                     "BabyAI-KeyCorridorS3R1-v0")
    output.configure()
    learnt = RunDir(args.teacher_from).teacher_state(args.teacher) if args.teacher_from else None
    teacher = make_teacher(args.teacher, seed=args.seed)
    if learnt is not None:
        teacher.load_state_dict(learnt)
    misses: Counter = Counter()
    accuracy = subgoal_agreement(teacher, args.env, args.episodes, args.seed, misses=misses)
    who = f"{args.teacher}{' from ' + args.teacher_from if args.teacher_from else ' untaught'}"
    print(f"{args.env}, {who}: subgoal accuracy {accuracy:.3f}, {sum(misses.values())} states missed "
          f"({args.episodes} held-out bot episodes, seed {args.seed})")
    groups: Counter = Counter()
    for (said, stack, facts), n in misses.items():
        groups[(kind(said), kind(stack.split(" | ")[0]), carrying(facts))] += n
    table = Table(title="missed states by kind")
    for column in ("states", "teacher", "bot", "carrying"):
        table.add_column(column)
    for (said, bot, held), n in groups.most_common(args.top):
        table.add_row(str(n), said, bot, held)
    states = Table(title="the states missed most often")
    for column in ("states", "teacher", "bot's stack", "facts"):
        states.add_column(column)
    for (said, stack, facts), n in misses.most_common(args.top):
        states.add_row(str(n), said, stack, facts)
    Console().print(table, states)


if __name__ == "__main__":
    main()

"""Which part of a two-part mission the teacher reads as first: on `OpenDoorsOrderN4`'s held-out
missions of two parts ("open the X door, then open the Y door", "open the X door after you open
the Y door"), how often the door the mission's clozes name likeliest is the first part, and, that
right, the next likeliest the second (`sequences`: the current part is the likeliest not done).

    python benchmarks/parts_order.py [--teacher smollm2] [--teacher-from RUN] [--missions 60] [--seed 0]

Prints the shares per kind of mission ("then", "after"): the untaught teacher, or with
--teacher-from the teacher a run learnt.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from minigrid.core.constants import COLOR_TO_IDX
from minigrid.envs.babyai.core.verifier import AfterInstr, BeforeInstr

from mutualrl import output
from mutualrl.envs import task_actions
from mutualrl.evaluation import EVAL_SEED_BASE
from mutualrl.grounding import KINDS, mission_questions
from mutualrl.reading import Reading
from mutualrl.teachers import make_teacher
from mutualrl.tracking import RunDir

LEVEL = "BabyAI-OpenDoorsOrderN4-v0"


def two_part_missions(count: int, seed: int) -> list[tuple[str, str, str, str]]:
    """(mission, kind, first colour, second colour) of the level's held-out missions of two parts."""
    env, found, episode = gym.make(LEVEL), [], 0
    while len(found) < count:
        env.reset(seed=EVAL_SEED_BASE + seed * 10_000 + episode)
        episode += 1
        instr = env.unwrapped.instrs
        if isinstance(instr, (BeforeInstr, AfterInstr)):
            a, b = instr.instr_a.desc.color, instr.instr_b.desc.color
            then = isinstance(instr, BeforeInstr)
            found.append((env.unwrapped.mission, "then" if then else "after", *((a, b) if then else (b, a))))
    return found


def door_order(reading: Reading) -> list[int]:
    """The doors' colours, likeliest first, as the mission's `open` clozes read them."""
    return list(np.argsort(-reading.names["open"][:, KINDS.index("door")]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="smollm2")
    parser.add_argument("--teacher-from", default="", help="a run directory whose learnt teacher to read with")
    parser.add_argument("--missions", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0, help="the held-out seed block")
    args = parser.parse_args()
    output.configure()
    teacher = make_teacher(args.teacher, seed=args.seed)
    if args.teacher_from:
        teacher.load_state_dict(RunDir(args.teacher_from).teacher_state(args.teacher))
    actions, missions = task_actions(LEVEL), two_part_missions(args.missions, args.seed)
    asked = [mission_questions(m, actions) for m, *_ in missions]
    answers = teacher.advise([q for qs in asked for q in qs])
    right: dict[str, list[tuple[bool, bool]]] = {"then": [], "after": []}
    at = 0
    for (mission, kind, first, second), questions in zip(missions, asked):
        probs = [a.probs for a in answers[at: at + len(questions)]]
        at += len(questions)
        order = door_order(Reading(questions, probs, actions))
        right[kind].append((order[0] == COLOR_TO_IDX[first], order[1] == COLOR_TO_IDX[second]))
    label = f"{args.teacher}{' from ' + args.teacher_from if args.teacher_from else ''}"
    for kind, rows in right.items():
        firsts = [f for f, _ in rows]
        seconds = [s for f, s in rows if f]
        print(f"{label} on {LEVEL}, '{kind}' missions ({len(rows)}): first part read first {np.mean(firsts):.2f}, "
              f"then the second {np.mean(seconds) if seconds else float('nan'):.2f}")


if __name__ == "__main__":
    main()

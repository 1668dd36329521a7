"""The teacher on missions in held-out words: zero-shot, and after `mutual` on a level whose
missions the student and the teacher read in those words.

Prints the teacher's subgoal accuracy (held-out bot episodes of the run's seed) on the level in
held-out words and as given, before and after training, and the student's frames to 0.9 alone.
The verb of a mission in words the verb cloze does not map ("fetch", "move ... close to") is read
wrong zero-shot; with `verb_judged: at-success` (the default), feedback judges it by the act
that completed the mission (`completion`).

    python benchmarks/other_words.py [--env BabyAI-PickupLoc-v0] [--seed 0] [--frames 150000]
                                     [--words held-out] [--verb-judged at-success] [--episodes 20]
                                     [--out runs/other-words]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mutualrl import output
from mutualrl.config import VERB_JUDGEMENTS, GuidanceConfig, TrainConfig
from mutualrl.evaluation import subgoal_agreement
from mutualrl.loop import Trainer
from words import REWORDINGS, register


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="BabyAI-PickupLoc-v0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=150_000)
    parser.add_argument("--words", default="held-out", choices=sorted(REWORDINGS))
    parser.add_argument("--episodes", type=int, default=20, help="bot episodes per accuracy")
    parser.add_argument("--verb-judged", default=GuidanceConfig().verb_judged, choices=VERB_JUDGEMENTS,
                        help="the config's verb_judged (default: its default)")
    parser.add_argument("--teacher", default="smollm2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/other-words", help="parent of the run directory")
    args = parser.parse_args()
    output.configure()
    torch.set_num_threads(args.threads)
    worded = register(args.env, args.words)
    config = TrainConfig(env_id=worded, frames=args.frames, seed=args.seed).replace(
        mode="mutual", advice="subgoal", teacher=args.teacher, subgoal_reward=0.2, eval_every=30, eval_episodes=20,
        teacher_eval_every=0, verb_judged=args.verb_judged)
    trainer = Trainer(config, Path(args.out) / f"{worded}-s{args.seed}-{args.verb_judged}", quiet=True)

    def accuracy(when: str) -> dict[str, float]:
        row = {level: subgoal_agreement(trainer.teacher, level, args.episodes, args.seed) for level in (worded, args.env)}
        print(json.dumps({"when": when, "frames": trainer.frames, **{k: round(v, 3) for k, v in row.items()}}), flush=True)
        return row

    before = accuracy("untaught")
    start = time.perf_counter()
    summary = trainer.train()
    after = accuracy("after")
    reached = summary["frames_to_0_9_alone"]
    print(f"{args.env} in {args.words} words, seed {args.seed}, {trainer.frames:,} frames ({time.perf_counter() - start:.0f} s): "
          f"teacher {before[worded]:.3f} -> {after[worded]:.3f} in those words, {before[args.env]:.3f} -> "
          f"{after[args.env]:.3f} as given; the student alone "
          + (f"reached 0.9 at {reached:,} frames" if reached is not None else "did not reach 0.9"))


if __name__ == "__main__":
    main()

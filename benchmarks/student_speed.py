"""Frames per second of each student learning alone, and where its time goes: stepping the
environments, the student acting, and its PPO update. One run after another in this process, so
that every student meets the same machine.

    python benchmarks/student_speed.py [--students mlp,film,film:64] [--env BabyAI-GoToLocal-v0] \
        [--frames 40960] [--threads 2]

A student is an architecture, or ARCHITECTURE:MEMORY for one with an LSTM memory of that size
(as in students.py, whose parsing, and subgoal_speed.py's measurement, this script shares).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from mutualrl import output
from mutualrl.config import TrainConfig

import subgoal_speed
from students import student_settings


def measure(student: str, env_id: str, frames: int, out: str) -> dict[str, float]:
    config = TrainConfig(env_id=env_id, mode="rl", frames=frames, **student_settings(student)).replace(
        eval_every=0, checkpoint_every=10_000)
    figures = subgoal_speed.measure(config, Path(out))
    return {"fps": figures["fps"], **{part: figures[f"time_{part}"] / figures["wall"]
                                      for part in ("env", "student", "student_update")}}


def main() -> None:
    output.configure()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", default="mlp,film,film:64")
    parser.add_argument("--env", default="BabyAI-GoToLocal-v0")
    parser.add_argument("--frames", type=int, default=40_960)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, student in enumerate(args.students.split(",")):
            results[student] = measure(student, args.env, args.frames, f"{tmp}/{i}")
    base = next(iter(results.values()))["fps"]
    print(f"{args.env}, {args.frames:,} frames each, {args.threads} torch threads")
    print(f"{'student':<12} {'frames/s':>9} {'x first':>8} {'env':>6} {'acting':>7} {'update':>7}  (share of wall time)")
    for student, r in results.items():
        print(f"{student:<12} {r['fps']:>9,.0f} {r['fps'] / base:>8.2f} {r['env']:>6.0%} {r['student']:>7.0%} "
              f"{r['student_update']:>7.0%}")


if __name__ == "__main__":
    main()

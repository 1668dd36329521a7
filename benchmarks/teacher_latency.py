"""Milliseconds and tokens per advised decision for the 135M teacher: naive vs prefix-shared.

Naive (GLAM/Lamorel style): one full prompt+action sequence per action, logits everywhere.
Ours, cold: a state never seen before. The task header is computed once per teacher version
(warmed before timing: it is paid once per run, not per decision), each state's own tokens
once, then only the action tokens; the frozen lower layers' states are kept.
Ours, warm: the same state re-scored by a new teacher version (after a LoRA update): only the
adapted top layers run, over the kept lower-layer states.
Tokens per decision count each token once per pass through the whole layer stack (a warm
re-score passes none: it runs only the adapted top `lora_layers` layers, 1 of 30 by default).
Also prints how many distinct text states GoToRedBallNoDists has under a random policy and
what scoring all of them zero-shot costs.

    python benchmarks/teacher_latency.py [--device cuda] [--repeats 3] [--precision auto]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mutualrl import output

from mutualrl.config import PRECISIONS, TeacherConfig
from mutualrl.envs import make_env, situations, task_actions
from mutualrl.teachers import make_teacher

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # the naive reference scorer lives beside the tests
from naive_scoring import naive_logliks  # noqa: E402

ENV = "BabyAI-GoToRedBallNoDists-v0"


def distinct_situations(episodes_steps: int, seed: int = 0):
    """Distinct text states met by a random policy over `episodes_steps` steps of 16 envs."""
    envs = make_env(ENV, 16, seed)
    obs, _ = envs.reset(seed=seed)
    actions = task_actions(ENV)
    rng = np.random.default_rng(seed)
    found = {}
    for _ in range(episodes_steps):
        for s in situations(obs, actions, [None] * 16):
            found.setdefault(s.description, s)
        obs, *_ = envs.step(rng.integers(0, len(actions), 16))
    envs.close()
    return list(found.values())


def timed(fn, scorer, batch, device) -> tuple[float, float]:
    scorer.tokens_processed = 0
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        fn(batch)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000 / len(batch), scorer.tokens_processed / len(batch)


def main() -> None:
    output.configure()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3, help="batches timed per batch size")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="the frozen weights' (teacher_precision)")
    parser.add_argument("--steps", type=int, default=400, help="random-policy steps (x16 envs) to find states")
    args = parser.parse_args()
    teacher = make_teacher("smollm2", config=TeacherConfig(precision=args.precision), device=args.device)
    scorer = teacher.scorer
    naive = lambda batch: naive_logliks(scorer, batch)  # noqa: E731
    pool = distinct_situations(args.steps)
    print(f"{ENV}: {len(pool)} distinct text states in {args.steps * 16} random-policy steps")
    with torch.no_grad():
        scorer.logliks(pool[:1])  # warm-up; computes the task header once
        naive(pool[:1])
    print(f"trunk: {scorer.trunk_layers} frozen lower layers, "
          f"{scorer.model.config.num_hidden_layers - scorer.trunk_layers} adapted top layers")
    print(f"{'batch':>5} {'naive ms/dec':>13} {'naive tok/dec':>14} {'cold ms/dec':>12} {'cold tok/dec':>13} "
          f"{'speed-up':>9} {'warm ms/dec':>12}")
    rng = np.random.default_rng(0)
    for batch_size in (1, 8, 32):
        naive_ms, cold, warm = [], [], []
        for _ in range(args.repeats):
            batch = [pool[i] for i in rng.choice(len(pool), batch_size, replace=False)]
            naive_ms.append(timed(naive, scorer, batch, args.device))
            scorer.trunk_cache.clear()
            cold.append(timed(scorer.logliks, scorer, batch, args.device))
            warm.append(timed(scorer.logliks, scorer, batch, args.device))
        n_ms, n_tok = np.mean(naive_ms, axis=0)
        o_ms, o_tok = np.mean(cold, axis=0)
        w_ms = np.mean(warm, axis=0)[0]
        print(f"{batch_size:>5} {n_ms:>13.1f} {n_tok:>14.1f} {o_ms:>12.1f} {o_tok:>13.1f} {n_ms / o_ms:>8.1f}x {w_ms:>12.1f}")
    start = time.perf_counter()
    teacher.cache = teacher.cache.__class__()
    scorer.trunk_cache.clear()
    for i in range(0, len(pool), 32):
        teacher.advise(pool[i : i + 32])
    total = time.perf_counter() - start
    print(f"zero-shot advice for all {len(pool)} states (ours, batch 32): {total:.1f} s "
          f"({total * 1000 / len(pool):.1f} ms/state); later visits are cache hits")


if __name__ == "__main__":
    main()

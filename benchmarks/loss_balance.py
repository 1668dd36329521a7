"""How the terms of the student's loss share its clipped gradient, at a run's newest checkpoint.

One rollout from a copy of the run (the run itself is left as it was), then per minibatch the
gradient norm of each weighted term (policy, entropy, value, guidance) alone and of their sum.
PPO clips the whole gradient to `max_grad_norm`, so a term whose gradient dwarfs the policy's
shrinks the policy's step: the last column is the factor the clip leaves it (1 = unclipped).

    python benchmarks/loss_balance.py RUN_DIR [RUN_DIR ...] [--threads 1]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from mutualrl import output
from mutualrl.config import TrainConfig
from mutualrl.loop import Trainer
from mutualrl.ppo import minibatch_losses, weighted
from mutualrl.tracking import Timer

TERMS = ("pg_loss", "entropy", "v_loss", "guidance_loss")


def gradient_norm(model: torch.nn.Module, loss: torch.Tensor) -> float:
    model.zero_grad()
    loss.backward(retain_graph=True)
    return float(torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters() if p.grad is not None)))


def balance(run: str) -> tuple[dict[str, float], TrainConfig]:
    """Mean gradient norm of each weighted term and of the whole loss over one rollout's
    minibatches, and the run's config."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "run"
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("tb"))
        trainer = Trainer.resume(copy, quiet=True)
        batch, _, _ = trainer.prepare_update(trainer.collect_rollout(Timer()))
        config, model, rows = trainer.config.ppo, trainer.student, []
        for mb in batch.minibatches(config.minibatches):
            terms = weighted(minibatch_losses(model, mb, config.clip_coef)[0], config)
            row = {name: gradient_norm(model, terms[name]) if terms[name].requires_grad else 0.0 for name in TERMS}
            row["total"] = gradient_norm(model, sum(terms.values()))
            rows.append(row)
        mean = {name: float(np.mean([r[name] for r in rows])) for name in rows[0]}
        mean["clip"] = min(1.0, config.max_grad_norm / mean["total"])
        return mean, trainer.config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories with a checkpoint")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    output.configure()
    torch.set_num_threads(args.threads)
    table = Table(title="gradient norm of each term of the student's loss (one rollout, mean over minibatches)")
    for column in ("run", "level", "advice", "policy", "entropy", "value", "guidance", "total", "clip leaves"):
        table.add_column(column)
    for run in args.runs:
        figures, saved = balance(run)
        advice = saved.guidance.advice if saved.mode != "rl" else "-"
        level = saved.env_id.removeprefix("BabyAI-").removesuffix("-v0")
        table.add_row(Path(run).name, level, advice, *(f"{figures[n]:.3f}" for n in (*TERMS, "total")), f"{figures['clip']:.2f}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()

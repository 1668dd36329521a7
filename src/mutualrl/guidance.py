"""LLM -> RL: asking the teacher during the rollout, what the student is shown, and how far the
student trusts the advice.

Two kinds of advice share one budget of teacher reads and one trust table:
`ActionGuidance` asks about every step and adds the teacher's action distribution to the
student's; `SubgoalGuidance` (`subgoal_guidance.py`) asks only when a subgoal ends, and shows the student the named
object's mask and the verb. Each `advise` turns a step into an `AdviceRecord`; `update` weighs,
after the rollout, whether following the advice beat the alternatives (`trust.TrustTable`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from mutualrl.config import GuidanceConfig
from mutualrl.envs import Situation
from mutualrl.rollout import AdviceRecord, Rollout, SubgoalDecision
from mutualrl.teachers import Teacher
from mutualrl.trust import TrustTable

#: advice probabilities are floored here before their log enters the student's logits
ADVICE_FLOOR = 1e-3


class Guidance:
    """What both kinds of advice share: the trust table, and the budget of teacher reads.

    A read is a prompt the teacher has not answered at its current version; cached answers are
    free. With `budget` > 0, each iteration may spend that many reads, first on the prompts of the
    students least sure of themselves (their policy's entropy at the previous step) or new to the
    teacher; the others go on without fresh advice, and nothing waits."""

    def __init__(self, config: GuidanceConfig, teacher: Teacher, rng: np.random.Generator, device: torch.device,
                 shows: bool = True):
        self.config, self.teacher, self.rng, self.device, self.shows = config, teacher, rng, device, shows
        self.trust = TrustTable(config.trust_rate, config.trust_sharpness, config.trust_spread, config.trust_confidence)
        self._seen: set[str] = set()
        #: with subgoal advice, the rollout's decisions and hindsight records (`rollout.SubgoalDecision`)
        self.decisions: list[SubgoalDecision] | None = None
        self.hindsight: list[SubgoalDecision] | None = None
        self.start_rollout()

    def start_rollout(self) -> None:
        """Before each rollout: a fresh budget of reads, and fresh counters."""
        self.reads_left = self.config.budget or math.inf
        self.reads, self.steps, self.advised, self.prompts, self.shaped, self.stale = 0, 0, 0, set(), 0.0, 0

    def _priority(self, keys: Sequence[str], entropy: float) -> float:
        """How much a copy wants its prompts read: its student's entropy, plus 1 if any prompt is new."""
        self.prompts.update(keys)
        new = any(k not in self._seen for k in keys)
        self._seen.update(keys)
        return float(entropy) + new

    def after_step(self, obs: dict[str, Any], done: np.ndarray, success: np.ndarray, final: dict[str, Any],
                   step: int) -> np.ndarray:
        """What the step's outcome changes for the advice; returns a shaped reward per copy (none here)."""
        return np.zeros(len(done), dtype=np.float32)

    def loss_weight(self, rollout: Rollout, frames: int) -> torch.Tensor:
        """Per-step weight of the guidance term lambda * trust * CE(teacher || student), (steps, envs)."""
        return rollout.advice.available * self.config.lambda_at(frames) * rollout.advice.trust

    def usage(self, frames_per_iteration: int) -> dict[str, float]:
        """How often the student asked: the share of steps advised, reads and distinct prompts per 1,024 frames."""
        per_1024 = 1024 / frames_per_iteration
        return {"advised_fraction": self.advised / max(1, self.steps), "reads_per_1024_frames": self.reads * per_1024,
                "prompts_per_1024_frames": len(self.prompts) * per_1024,
                "stale_answers_per_1024_frames": self.stale * per_1024}


class ActionGuidance(Guidance):
    """The teacher's distribution over the text actions, asked at every step within the budget."""

    def advise(self, situations: Sequence[Situation], keys: Sequence[str], envs: Sequence[Any], frames: int,
               entropy: np.ndarray) -> AdviceRecord:
        """Ask the teacher about one step of every copy (within the budget); show its advice with `advice_prob`."""
        dev, cfg, n, actions = self.device, self.config, len(situations), len(situations[0].actions)
        granted = self._affordable(situations, keys, entropy)
        probs = np.full((n, actions), 1.0 / actions)
        available = np.zeros(n)
        asked = [i for i in range(n) if granted[i]]
        if asked:
            for i, a in zip(asked, self.teacher.advise([situations[i] for i in asked], envs=[envs[i] for i in asked])):
                probs[i], available[i] = a.probs, float(a.available)
        self.steps, self.advised = self.steps + n, self.advised + int(available.sum())
        probs = torch.as_tensor(probs, dtype=torch.float32, device=dev)
        available = torch.as_tensor(available, dtype=torch.float32, device=dev)
        show = torch.as_tensor(self.rng.random(n) < cfg.advice_prob, device=dev) & available.bool()
        trust = torch.tensor([self.trust.trust(k) for k in keys], device=dev)
        pull = cfg.advice_weight * cfg.lambda_at(frames)
        logits = torch.zeros_like(probs)
        if pull:
            logits = (pull * trust * show)[:, None] * probs.clamp(min=ADVICE_FLOOR).log()
        return AdviceRecord(probs=probs, available=available, shown=probs * show[:, None], gate=show.float(),
                            logits=logits, trust=trust)

    def _affordable(self, situations: Sequence[Situation], keys: Sequence[str], entropy: np.ndarray) -> list[bool]:
        """Which copies get their state read at once, most wanted first, within the budget."""
        priority = [self._priority([k], e) for k, e in zip(keys, entropy)]
        granted, scheduled = [False] * len(keys), set()
        for i in np.argsort(-np.asarray(priority), kind="stable"):
            new = keys[i] not in scheduled and not self.teacher.knows(situations[i])
            if new <= self.reads_left:
                granted[i] = True
                self.reads_left -= new
                self.reads += new
                scheduled.add(keys[i])
        return granted

    def update(self, rollout: Rollout, advantages: torch.Tensor, frames: int) -> dict[str, float]:
        """Trust evidence from this rollout: did taking the teacher's top action beat the others?"""
        advice = rollout.advice
        took_advice = (rollout.actions == advice.probs.argmax(-1)) & advice.available.bool()
        followed = took_advice.flatten().cpu().numpy()
        self.trust.update(rollout.flat_keys(), followed, advantages.flatten().cpu().numpy())
        return {"lambda": self.config.lambda_at(frames), "trust": float(advice.trust.mean()),
                "advice_followed_rate": float(followed.mean())}

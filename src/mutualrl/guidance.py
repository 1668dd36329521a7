"""LLM -> RL: asking the teacher during the rollout, what the student is shown, and how far the
student trusts the advice.

`Guidance.advise` turns a step's situations into an `AdviceRecord` (the advice, whether it was
shown, the logits it adds, the trust); `Guidance.update` weighs, after the rollout, whether
following the advice beat the alternatives. Edit `TrustTable` to change how much advice pulls.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from mutualrl.config import GuidanceConfig
from mutualrl.envs import Situation
from mutualrl.rollout import AdviceRecord, Rollout
from mutualrl.teachers import Teacher

#: advice probabilities are floored here before their log enters the student's logits
ADVICE_FLOOR = 1e-3


class Guidance:
    """Owns the teacher's side of acting: asks it, decides what the student sees, keeps trust."""

    def __init__(self, config: GuidanceConfig, teacher: Teacher, rng: np.random.Generator, device: torch.device):
        self.config, self.teacher, self.rng, self.device = config, teacher, rng, device
        self.trust = TrustTable(config.trust_rate, config.trust_sharpness, config.trust_spread, config.trust_confidence)

    def advise(self, situations: Sequence[Situation], keys: Sequence[str], envs: Sequence[Any], frames: int) -> AdviceRecord:
        """Ask the teacher about one step of every copy; show its advice with `advice_prob`."""
        dev, cfg = self.device, self.config
        advice = self.teacher.advise(situations, envs=envs)
        probs = torch.as_tensor(np.stack([a.probs for a in advice]), dtype=torch.float32, device=dev)
        available = torch.as_tensor([a.available for a in advice], dtype=torch.float32, device=dev)
        show = torch.as_tensor(self.rng.random(len(advice)) < cfg.advice_prob, device=dev) & available.bool()
        trust = torch.tensor([self.trust.trust(k) for k in keys], device=dev)
        pull = cfg.advice_weight * cfg.lambda_at(frames)
        logits = torch.zeros_like(probs)
        if pull:
            logits = (pull * trust * show)[:, None] * probs.clamp(min=ADVICE_FLOOR).log()
        return AdviceRecord(probs=probs, available=available, shown=probs * show[:, None], logits=logits, trust=trust)

    def loss_weight(self, rollout: Rollout, frames: int) -> torch.Tensor:
        """Per-step weight of the guidance term lambda * trust * CE(teacher || student), (steps, envs)."""
        return rollout.advice.available * self.config.lambda_at(frames) * rollout.advice.trust

    def update(self, rollout: Rollout, advantages: torch.Tensor, frames: int) -> dict[str, float]:
        """Trust evidence from this rollout: did taking the teacher's top action beat the others?"""
        advice = rollout.advice
        took_advice = (rollout.actions == advice.probs.argmax(-1)) & advice.available.bool()
        followed = took_advice.flatten().cpu().numpy()
        self.trust.update(rollout.flat_keys(), followed, advantages.flatten().cpu().numpy())
        return {"lambda": self.config.lambda_at(frames), "trust": float(advice.trust.mean()),
                "advice_followed_rate": float(followed.mean())}


class TrustTable:
    """How far the student trusts the teacher's advice in each situation, in [0, 1].

    The evidence is the critic's: the advantage (standardised per rollout) of the steps where the
    student took the teacher's top action, against that of the steps where it took another. Both
    are averaged with exponentially decaying weights (`rate`), over all situations and per
    situation. A situation's own gain is noisy (a few visits per rollout), so it is shrunk towards
    the overall gain as in empirical Bayes: with its standard error se, it gets the weight
    spread^2 / (spread^2 + se^2). Trust is max(0, tanh(sharpness * (gain - confidence * se of
    the overall gain))): advice starts with no pull, pulls as far as it surely beats the student's
    alternatives, and advice that is no better or harmful stops pulling.

    Why each part (measured): a plain average of the followed steps' advantage would not do, since
    once the student mostly follows the advice the critic's baseline absorbs it and that average is
    ~0; without the shrinkage, max(0, .) of per-situation noise gave worthless advice a trust of
    ~0.3; and without the margin, the guidance term towards worthless advice slowed the student
    even at a trust of ~0.1.
    """

    def __init__(self, rate: float = 0.3, sharpness: float = 8.0, spread: float = 0.1, confidence: float = 2.0):
        self.rate, self.sharpness, self.spread, self.confidence = rate, sharpness, spread, confidence
        #: situation (None: all) -> decayed [sum followed, count followed, sum other, count other]
        self._sums: dict[str | None, np.ndarray] = {}

    def gain(self, key: str | None = None) -> tuple[float, float]:
        """Advantage gain of following the advice, and its variance (overall for `key=None`)."""
        sums = self._sums.get(key)
        if sums is None or sums[1] < 1e-9 or sums[3] < 1e-9:
            return 0.0, math.inf
        return sums[0] / sums[1] - sums[2] / sums[3], 1.0 / sums[1] + 1.0 / sums[3]

    def trust(self, key: str) -> float:
        overall, overall_variance = self.gain()
        own, variance = self.gain(key)
        weight = self.spread**2 / (self.spread**2 + variance)
        margin = self.confidence * math.sqrt(overall_variance) if math.isfinite(overall_variance) else math.inf
        return max(0.0, math.tanh(self.sharpness * (overall + weight * (own - overall) - margin)))

    def update(self, keys: Sequence[str], followed: np.ndarray, advantages: np.ndarray) -> None:
        """`followed[i]`: the student took the teacher's top action at sample i."""
        scaled = advantages / (float(np.std(advantages)) + 1e-8)
        followed = np.asarray(followed, dtype=bool)
        for sums in self._sums.values():
            sums *= 1.0 - self.rate
        names, which = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
        columns = [scaled * followed, followed, scaled * ~followed, ~followed]  # the four sums' terms
        per_key = np.stack([np.bincount(which, weights=c, minlength=len(names)) for c in columns], axis=1)
        for key, sums in [(None, per_key.sum(0)), *zip(map(str, names), per_key)]:
            self._sums[key] = self._sums.get(key, np.zeros(4)) + sums

    def state_dict(self) -> dict:
        return {key: sums.tolist() for key, sums in self._sums.items()}

    def load_state_dict(self, state: dict) -> None:
        self._sums = {key: np.array(sums, dtype=float) for key, sums in state.items()}

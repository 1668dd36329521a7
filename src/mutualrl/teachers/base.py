"""The teacher boundary: situations in, advice out; feedback in, a new version out.

The loop talks to every teacher through this interface only, so the RL code never touches
tokenizers or HTTP, and a teacher never sees PPO.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from mutualrl.envs import Situation


@dataclass
class Advice:
    """A distribution over the situation's text actions, and optionally a short hint.

    `available` is False when the teacher could not answer (e.g. its server is down); the
    probabilities are then uniform and the student must not be pulled towards them."""

    probs: np.ndarray
    hint: str | None = None
    available: bool = True


@dataclass
class FeedbackItem:
    """What the student learnt about one (situation, action) pair, averaged over its visits.

    `advantage` and `td_error` come from the student's critic (NaN where the student never took
    the action there); `success` is the share of the finished episodes through this pair that
    succeeded (NaN when none finished yet); `policy` is the student's own probability of the
    action in that situation, without advice: what its training on all earlier returns made of
    it (NaN when unknown).
    """

    situation: Situation
    action: str
    advantage: float
    td_error: float
    success: float
    count: int
    policy: float = float("nan")


class Teacher(ABC):
    """Advice for batches of situations; `version` changes whenever its behaviour changes."""

    name: str = "teacher"

    def __init__(self) -> None:
        self.version = 0

    @abstractmethod
    def advise(self, situations: Sequence[Situation]) -> list[Advice]:
        """One `Advice` per situation, over that situation's `actions`."""

    def learn(self, feedback: Sequence[FeedbackItem]) -> dict[str, float]:
        """Improve from the student's feedback; a frozen teacher ignores it."""
        return {}

    @property
    def learns(self) -> bool:
        return type(self).learn is not Teacher.learn

    def stats(self) -> dict[str, float]:
        """Counters for the metrics (calls, cache hits, failures)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to restore this teacher's behaviour."""
        return {"version": self.version}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.version = int(state.get("version", 0))


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of action scores (log-likelihoods) into an advice distribution."""
    z = np.asarray(scores, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)

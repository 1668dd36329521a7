"""How far the student trusts the teacher's advice in each situation: edit `TrustTable` to
change how much advice pulls."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


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

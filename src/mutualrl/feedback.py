"""RL -> LLM: the student's verdict on the advice, from real returns and its own critic.

Edit `collect_feedback` to change the signal the teacher learns from, and `TrustTable` to
change how much the student lets advice pull on it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from mutualrl.envs import Situation
from mutualrl.teachers.base import FeedbackItem
from mutualrl.teachers.text import question


def episode_outcomes(dones: np.ndarray, successes: np.ndarray) -> np.ndarray:
    """For each (step, env), whether the episode through it succeeded: 1, 0, or NaN if unfinished.

    `dones[t, e]` marks the last step of an episode and `successes[t, e]` its outcome.
    """
    steps, envs = dones.shape
    outcome = np.full((steps, envs), np.nan)
    for e in range(envs):
        current = np.nan
        for t in reversed(range(steps)):
            if dones[t, e]:
                current = float(successes[t, e])
            outcome[t, e] = current
    return outcome


def collect_feedback(
    situations: Sequence[Sequence[Situation]],
    actions: np.ndarray,
    advantages: np.ndarray,
    td_errors: np.ndarray,
    outcomes: np.ndarray,
    policy: np.ndarray | None = None,
) -> list[FeedbackItem]:
    """One item per action of each distinct prompt of a rollout, its signals averaged over visits.

    Arrays are shaped (steps, envs); `actions` holds indices into each situation's actions and
    `policy` (steps, envs, actions) the student's own action probabilities. Critic signals of an
    action the student never took in a prompt are NaN.
    """
    visits: dict[str, list[tuple[int, int]]] = {}
    first: dict[str, Situation] = {}
    for t, row in enumerate(situations):
        for e, situation in enumerate(row):
            key = question(situation)
            first.setdefault(key, situation)
            visits.setdefault(key, []).append((t, e))
    items = []
    for key, where in visits.items():
        situation = first[key]
        ts, es = (np.array(x) for x in zip(*where))
        for index, action in enumerate(situation.actions):
            taken = actions[ts, es] == index
            finished = outcomes[ts[taken], es[taken]]
            finished = finished[~np.isnan(finished)]
            items.append(FeedbackItem(
                situation=Situation(situation.mission, situation.description, situation.actions),
                action=action,
                advantage=float(advantages[ts[taken], es[taken]].mean()) if taken.any() else math.nan,
                td_error=float(td_errors[ts[taken], es[taken]].mean()) if taken.any() else math.nan,
                success=float(finished.mean()) if len(finished) else math.nan,
                count=int(taken.sum()),
                policy=float(policy[ts, es, index].mean()) if policy is not None else math.nan,
            ))
    return items


class TrustTable:
    """How far the student trusts the teacher's advice in each situation, in [0, 1].

    The evidence is the critic's: the (normalised) advantage of the steps where the student
    took the teacher's top action minus that of the steps where it took another. That gain is
    averaged over all situations and per situation, exponentially with `rate` (bias-corrected,
    so the first rollout already counts in full). A situation's own average counts for as much
    as its number of samples allows (`prior` samples' worth of weight goes to the overall one),
    and trust is max(0, tanh(sharpness * gain)). So advice starts with no pull, pulls as far as
    the critic finds it better than the student's alternatives, and advice that is no better
    or harmful, overall or in one situation, stops pulling.
    (A plain average of the followed steps' advantage would not do: once the student mostly
    follows the advice, its critic's baseline absorbs the advice and that average is ~0.)
    """

    def __init__(self, rate: float = 0.3, sharpness: float = 8.0, prior: float = 20.0):
        self.rate, self.sharpness, self.prior = rate, sharpness, prior
        self._averages: dict[str | None, list[float]] = {}  # situation (None: all) -> [sum, weight, samples]

    def gain(self, key: str | None = None) -> float:
        """Averaged advantage gain of following the advice (overall for `key=None`)."""
        total, weight, _ = self._averages.get(key, (0.0, 0.0, 0.0))
        return total / weight if weight else 0.0

    def trust(self, key: str) -> float:
        samples = self._averages.get(key, (0.0, 0.0, 0.0))[2]
        share = samples / (samples + self.prior)
        return max(0.0, math.tanh(self.sharpness * (share * self.gain(key) + (1 - share) * self.gain())))

    def update(self, keys: Sequence[str], followed: np.ndarray, advantages: np.ndarray) -> None:
        """`followed[i]`: the student took the teacher's top action at sample i."""
        scaled = advantages / (float(np.std(advantages)) + 1e-8)
        followed = np.asarray(followed, dtype=bool)
        names, which = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
        groups: dict[str | None, np.ndarray] = {None: np.ones(len(scaled), dtype=bool)}
        groups.update({str(name): which == i for i, name in enumerate(names)})
        for key, rows in groups.items():
            took, other = rows & followed, rows & ~followed
            if took.any() and other.any():
                entry = self._averages.setdefault(key, [0.0, 0.0, 0.0])
                entry[0] = (1 - self.rate) * entry[0] + self.rate * float(scaled[took].mean() - scaled[other].mean())
                entry[1] = (1 - self.rate) * entry[1] + self.rate
                entry[2] += float(rows.sum())

    def state_dict(self) -> dict:
        return {key: list(values) for key, values in self._averages.items()}

    def load_state_dict(self, state: dict) -> None:
        self._averages = {key: list(values) for key, values in state.items()}

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

    Trust follows the critic: when the student took the teacher's top action in a situation,
    the (normalised) advantage of doing so enters an exponential average for that situation.
    Trust is full while that average is >= 0 and falls towards 0 as it turns negative
    (2 * sigmoid), so advice that turned out harmful pulls less on the student.
    """

    def __init__(self, rate: float = 0.3, sharpness: float = 4.0):
        self.rate, self.sharpness = rate, sharpness
        self._score: dict[str, float] = {}

    def trust(self, key: str) -> float:
        score = self._score.get(key, 0.0)
        return min(1.0, 2.0 / (1.0 + math.exp(-self.sharpness * score)))

    def update(self, keys: Sequence[str], followed: np.ndarray, advantages: np.ndarray) -> None:
        """`followed[i]`: the student took the teacher's top action at sample i."""
        scale = float(np.std(advantages)) + 1e-8
        sums: dict[str, list[float]] = {}
        for key, took, adv in zip(keys, followed, advantages):
            if took:
                sums.setdefault(key, []).append(adv / scale)
        for key, values in sums.items():
            old = self._score.get(key, 0.0)
            self._score[key] = (1 - self.rate) * old + self.rate * float(np.mean(values))

    def mean(self, keys: Sequence[str]) -> float:
        return float(np.mean([self.trust(k) for k in keys])) if keys else 1.0

    def state_dict(self) -> dict:
        return dict(self._score)

    def load_state_dict(self, state: dict) -> None:
        self._score = dict(state)

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
from mutualrl.feedback import PromptFeedback
from mutualrl.teachers.prompt import question


@dataclass
class Advice:
    """A distribution over the situation's text actions, and optionally a short hint.

    `available` is False when the teacher could not answer (e.g. its server is down); the
    probabilities are then uniform and the student must not be pulled towards them."""

    probs: np.ndarray
    hint: str | None = None
    available: bool = True


class Teacher(ABC):
    """Advice for batches of situations; `version` changes whenever its behaviour changes."""

    name: str = "teacher"
    #: whether `learn` changes the teacher (a frozen teacher ignores feedback)
    learns: bool = False
    #: a privileged teacher names each copy's subgoal itself (`subgoal`), from the live
    #: environment; a text teacher answers the clozes about the mission (`grounding`)
    names_subgoals: bool = False

    def __init__(self) -> None:
        self.version = 0

    @abstractmethod
    def advise(self, situations: Sequence[Situation], envs: Sequence[Any] | None = None) -> list[Advice]:
        """One `Advice` per situation, over that situation's `actions`.

        `envs` are the live environments behind the situations, in the same order: the explicit
        channel for a privileged teacher (the BabyAI bot); text teachers never read them."""

    def observe(self, envs: Sequence[Any], last_actions: Sequence[str | None]) -> None:
        """Called every step with subgoal advice: a teacher that plans from the live environments
        keeps pace with them (`last_actions[i]` is None at an episode's start). Text teachers ignore it."""

    def knows(self, situation: Situation) -> bool:
        """Whether advice on this situation is free now (answered before at this version): what a
        budget of teacher reads does not count. A teacher without a model to read is always free."""
        return True

    def recall(self, situations: Sequence[Situation]) -> list["Advice | None"]:
        """The last answers given to these situations, whatever the version, without reading
        (None where there is none): what stands while a budget defers the re-read."""
        return [None] * len(situations)

    def key(self, situation: Situation) -> str:
        """The prompt key: everything the teacher's answer depends on besides its version. Trust,
        feedback and caches are kept per key."""
        return question(situation)

    def learn(self, feedback: Sequence[PromptFeedback], refresh: bool = False) -> dict[str, float]:
        """Improve from the student's feedback (one record per prompt); a frozen teacher ignores it.
        With `refresh`, the teacher re-reads the feedback's prompts afterwards (it will be asked again)."""
        return {}

    def stats(self, frames: int = 0) -> dict[str, Any]:
        """Counters for the metrics (calls, cache hits, failures); `frames`: those run since the last call."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to restore this teacher's behaviour."""
        return {"version": self.version}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.version = int(state.get("version", 0))


def by_answers(situations: Sequence[Situation]) -> list[list[int]]:
    """The situations' indices grouped by the answers they offer, groups in first-seen order (a
    score or a gradient step covers one answer set; a mission's clozes offer several)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, s in enumerate(situations):
        groups.setdefault(s.actions, []).append(i)
    return list(groups.values())


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of action scores (log-likelihoods) into an advice distribution."""
    z = np.asarray(scores, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def answer_probs(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """A question's advice from its answers' scores: their softmax; a question with one answer (a
    mission as the reply to other words, `channel`) gets that answer's likelihood, which only a
    comparison across questions can use."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.exp(scores / temperature) if scores.shape[-1] == 1 else softmax(scores, temperature)

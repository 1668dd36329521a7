"""Teachers that read text: the question they are asked, and cached scoring of the actions."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Sequence

import numpy as np

from mutualrl.envs import Situation
from mutualrl.teachers.base import Advice, Teacher, softmax
from mutualrl.teachers.cache import AdviceCache

SYSTEM_PROMPT = "You guide an agent in a grid world. Answer with one action."


def question(situation: Situation) -> str:
    """The user message a text teacher answers. Everything but the state's description comes
    first, so prompts of one task share all but their last few tokens (the prefix a local model
    computes once)."""
    return (
        f"Mission: {situation.mission}.\nActions: {', '.join(situation.actions)}.\n"
        f"Which action should the agent take now?\n{situation.description}"
    )


class TextTeacher(Teacher):
    """Scores each text action of a situation; advice is the softmax of those scores.

    Subclasses implement `score`. Scores are cached per (version, prompt): each distinct
    situation costs one model call per teacher version.
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.cache = AdviceCache()
        self.calls = 0

    @abstractmethod
    def score(self, situations: Sequence[Situation]) -> np.ndarray:
        """Scores (log-likelihoods or log-votes), shape (len(situations), len(actions)).

        All situations of one call share one action set."""

    def key(self, situation: Situation) -> str:
        """The cache key: everything the teacher's answer depends on besides its version."""
        return question(situation)

    def advise(self, situations: Sequence[Situation]) -> list[Advice]:
        keys = [self.key(s) for s in situations]
        found = {k: self.cache.get(self.version, k) for k in keys}
        missing: dict[str, Situation] = {}
        for k, s in zip(keys, situations):
            if found[k] is None:
                missing.setdefault(k, s)
        by_actions: dict[tuple[str, ...], list[str]] = {}
        for k, s in missing.items():
            by_actions.setdefault(s.actions, []).append(k)
        for group in by_actions.values():
            scores = self.score([missing[k] for k in group])
            self.calls += len(group)
            for k, row in zip(group, scores):
                self.cache.put(self.version, k, row)
                found[k] = row
        return [Advice(probs=softmax(found[k], self.temperature)) for k in keys]

    def bump_version(self) -> None:
        """Mark a behaviour change: cached advice of older versions is never served again."""
        self.version += 1
        self.cache.drop_versions_below(self.version)

    def stats(self) -> dict[str, float]:
        return {
            "teacher_calls": self.calls,
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "cache_hit_rate": self.cache.hit_rate,
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.calls = int(state.get("calls", 0))

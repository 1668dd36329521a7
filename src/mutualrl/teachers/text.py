"""Teachers that read text: cached scoring of the actions, and learning as a template."""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import Any, Sequence

import numpy as np

from mutualrl.envs import Situation
from mutualrl.feedback import PromptFeedback
from mutualrl.teachers.base import Advice, Teacher, answer_probs, by_answers
from mutualrl.teachers.cache import AdviceCache


class TextTeacher(Teacher):
    """Scores each text action of a situation; advice is the softmax of those scores.

    Subclasses implement `score` and, to learn, `update`. Advice is cached per (version, prompt
    key): each distinct situation costs one model call per teacher version; an `untaught` one,
    one call for the run (`score_untaught`). The softmax is taken once, when a prompt is read (on a
    door level a rollout asks for about 300 answers at each step, nearly all of them cached).
    """

    learns = True

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.cache: AdviceCache[Advice] = AdviceCache()
        self.untaught: dict[str, Advice] = {}  # prompt key -> the untaught teacher's advice
        self.calls = 0

    @abstractmethod
    def score(self, situations: Sequence[Situation]) -> np.ndarray:
        """Scores (log-likelihoods or log-votes), shape (len(situations), len(actions)).

        All situations of one call share one action set."""

    def score_each(self, situations: Sequence[Situation]) -> list[np.ndarray]:
        """Scores of prompts that may offer different answers: one `score` call per answer set
        (a teacher that reads them together overrides this)."""
        rows: list[np.ndarray] = [np.empty(0)] * len(situations)
        for members in by_answers(situations):
            for i, row in zip(members, self.score([situations[i] for i in members])):
                rows[i] = row
        return rows

    def score_untaught(self, situations: Sequence[Situation]) -> list[np.ndarray]:
        """Scores as the untaught teacher gives them (a teacher whose learning changes its model
        overrides this; an endpoint's memory holds nothing for questions no feedback judges)."""
        return self.score_each(situations)

    @abstractmethod
    def update(self, feedback: Sequence[PromptFeedback]) -> dict[str, float]:
        """Change the teacher towards what the feedback says paid off; returns diagnostics."""

    def learn(self, feedback: Sequence[PromptFeedback], refresh: bool = False) -> dict[str, float]:
        """Update, start a new version, and with `refresh` re-read the feedback's prompts at once in
        one batch (cheaper than a few at a time as the next rollout meets them). `time_reading`
        says how long that re-read took (booked as inference, not learning)."""
        if not feedback:
            return {}
        stats = self.update(feedback)
        self.bump_version()
        reading = self._timed_read([f.situation for f in feedback]) if refresh else 0.0
        return {**stats, "time_reading": reading}

    def _timed_read(self, situations: Sequence[Situation]) -> float:
        start = time.perf_counter()
        self.advise(situations)
        return time.perf_counter() - start

    def recall(self, situations: Sequence[Situation]) -> list[Advice | None]:
        return [self.untaught.get(self.key(s)) if s.untaught else self.cache.latest(self.key(s)) for s in situations]

    def knows(self, situation: Situation) -> bool:
        key = self.key(situation)
        return key in self.untaught if situation.untaught else (self.version, key) in self.cache

    def advise(self, situations: Sequence[Situation], envs: Sequence[Any] | None = None) -> list[Advice]:
        # one prompt may be asked both as taught and as untaught (`design.Design.unshift`)
        keys = [(s.untaught, self.key(s)) for s in situations]
        found = {(u, k): self.untaught.get(k) if u else self.cache.get(self.version, k) for u, k in keys}
        missing: dict[tuple[bool, str], Situation] = {}
        for key, s in zip(keys, situations):
            if found[key] is None:
                missing.setdefault(key, s)
        if missing:
            self.calls += len(missing)
            for untaught in (False, True):
                asked = {key: s for key, s in missing.items() if key[0] == untaught}
                if not asked:
                    continue
                rows = (self.score_untaught if untaught else self.score_each)(list(asked.values()))
                for key, row in zip(asked, rows):
                    found[key] = advice = self._advice(row)
                    if untaught:
                        self.untaught[key[1]] = advice
                    else:
                        self.cache.put(self.version, key[1], advice)
        return [found[key] for key in keys]

    def _advice(self, scores: np.ndarray) -> Advice:
        """Scores as advice, shared by every later ask of the prompt at this version (read-only)."""
        probs = answer_probs(scores, self.temperature)
        probs.setflags(write=False)
        return Advice(probs=probs)

    def bump_version(self) -> None:
        """Mark a behaviour change: cached advice of older versions is never served again."""
        self.version += 1
        self.cache.drop_versions_below(self.version)

    def stats(self, frames: int = 0) -> dict[str, Any]:
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

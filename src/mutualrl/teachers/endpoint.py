"""A teacher behind an OpenAI-compatible HTTP server (vLLM, llama.cpp server, Ollama).

Scores come from the server's token log-probabilities (`/completions` with `echo` and
`logprobs`); where a server does not offer those, from votes of sampled chat answers. A server
that stays down never stops the run: requests time out, are retried a bounded number of times
with backoff, and then the teacher answers "no advice" (counted, and said once in the log)
and waits `cooldown` seconds before it tries the server again.

It cannot change its weights, so it learns from feedback through its prompt: a per-situation
memory of the actions the student found good or bad.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any, Sequence

import numpy as np

from mutualrl.envs import Situation
from mutualrl.teachers.base import Advice, FeedbackItem
from mutualrl.teachers.text import SYSTEM_PROMPT, TextTeacher, question

log = logging.getLogger(__name__)


class EndpointError(Exception):
    """The server could not give an answer we can use."""


class EndpointTeacher(TextTeacher):
    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        method: str = "auto",
        samples: int = 8,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        cooldown: float = 30.0,
        temperature: float = 1.0,
    ):
        super().__init__(temperature)
        if method not in ("auto", "logprobs", "votes"):
            raise ValueError(f"method must be auto, logprobs or votes, got {method!r}")
        self.url = url.rstrip("/")
        self.model = model or "default"
        self.method = method
        self.samples, self.timeout, self.retries, self.backoff, self.cooldown = samples, timeout, retries, backoff, cooldown
        self.failures = 0
        self._down_until = 0.0
        self._warned = False
        self.memory: dict[str, dict[str, float]] = {}
        self.name = f"endpoint:{url}"

    # ------------------------------------------------------------------ prompts

    def key(self, situation: Situation) -> str:
        return self.user_message(situation)

    def user_message(self, situation: Situation) -> str:
        """The question, plus what the student reported about this situation before."""
        text = question(situation)
        notes = self.memory.get(question(situation))
        if notes:
            said = "; ".join(f"'{a}' {'helped' if v > 0 else 'hurt'} ({v:+.2f})" for a, v in sorted(notes.items()))
            text += f"\nThe student's experience here: {said}."
        return text

    # ------------------------------------------------------------------ scoring

    def advise(self, situations: Sequence[Situation]) -> list[Advice]:
        if time.monotonic() < self._down_until:
            self.failures += len(situations)
            return self._no_advice(situations)
        try:
            return super().advise(situations)
        except EndpointError as err:
            self.failures += len(situations)
            self._down_until = time.monotonic() + self.cooldown
            if not self._warned:
                log.warning("teacher endpoint %s unavailable (%s); going on without advice", self.url, err)
                self._warned = True
            return self._no_advice(situations)

    @staticmethod
    def _no_advice(situations: Sequence[Situation]) -> list[Advice]:
        return [Advice(probs=np.full(len(s.actions), 1 / len(s.actions)), available=False) for s in situations]

    def score(self, situations: Sequence[Situation]) -> np.ndarray:
        if self.method in ("auto", "logprobs"):
            try:
                return self._logprob_scores(situations)
            except EndpointError:
                if self.method == "logprobs":
                    raise
                self.method = "votes"  # this server does not echo log-probabilities
                log.info("endpoint %s gives no prompt log-probabilities; using %d sampled votes", self.url, self.samples)
        return self._vote_scores(situations)

    def _logprob_scores(self, situations: Sequence[Situation]) -> np.ndarray:
        prompts, spans = [], []
        for s in situations:
            prefix = f"{SYSTEM_PROMPT}\n{self.user_message(s)}\nAnswer: "
            for a in s.actions:
                prompts.append(prefix + a)
                spans.append((len(prefix), len(prefix) + len(a)))
        reply = self._post("/completions", {"model": self.model, "prompt": prompts, "max_tokens": 1,
                                            "echo": True, "logprobs": 1, "temperature": 0.0})
        choices = sorted(reply.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != len(prompts):
            raise EndpointError(f"expected {len(prompts)} choices, got {len(choices)}")
        scores = []
        for choice, (start, end) in zip(choices, spans):
            lp = choice.get("logprobs") or {}
            offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
            if not isinstance(offsets, list) or not isinstance(values, list) or len(offsets) != len(values):
                raise EndpointError("reply has no prompt log-probabilities")
            picked = [v for o, v in zip(offsets, values) if start <= o < end]
            if not picked or any(not isinstance(v, (int, float)) for v in picked):
                raise EndpointError("reply has no log-probabilities for the action tokens")
            scores.append(float(sum(picked)))
        return np.array(scores).reshape(len(situations), -1)

    def _vote_scores(self, situations: Sequence[Situation]) -> np.ndarray:
        rows = []
        for s in situations:
            reply = self._post("/chat/completions", {
                "model": self.model, "n": self.samples, "temperature": 1.0, "max_tokens": 8,
                "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": self.user_message(s)}],
            })
            counts = np.zeros(len(s.actions))
            for choice in reply.get("choices", []):
                text = str((choice.get("message") or {}).get("content", "")).lower()
                for j, a in enumerate(s.actions):
                    if a in text:
                        counts[j] += 1
                        break
            rows.append(np.log((counts + 1) / (counts.sum() + len(s.actions))))  # Laplace-smoothed votes
        return np.array(rows)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with a timeout and `retries` retries with exponential backoff."""
        data = json.dumps(body).encode()
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    reply = json.loads(response.read().decode())
                if not isinstance(reply, dict):
                    raise EndpointError("reply is not a JSON object")
                return reply
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code}"
                if 400 <= err.code < 500 and err.code != 429:
                    raise EndpointError(last) from None  # the request itself is wrong: retrying will not help
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                last = type(err).__name__ if not isinstance(err, urllib.error.URLError) else str(err.reason)
            except (json.JSONDecodeError, UnicodeDecodeError, EndpointError) as err:
                last = f"malformed reply ({type(err).__name__})"
        raise EndpointError(f"{last} after {self.retries + 1} attempts")

    # ----------------------------------------------------------------- learning

    def learn(self, feedback: Sequence[FeedbackItem]) -> dict[str, float]:
        """Write the student's verdicts into the per-situation prompt memory (mean advantage)."""
        feedback = [f for f in feedback if not np.isnan(f.advantage)]  # only actions the student took
        if not feedback:
            return {}
        scale = float(np.std([f.advantage for f in feedback])) + 1e-8
        for item in feedback:
            notes = self.memory.setdefault(question(item.situation), {})
            value = item.advantage / scale
            notes[item.action] = value if item.action not in notes else 0.5 * (notes[item.action] + value)
        self.bump_version()
        return {"teacher_memory_situations": len(self.memory)}

    def stats(self) -> dict[str, float]:
        return {**super().stats(), "teacher_failures": self.failures}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "memory": self.memory, "method": self.method}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.memory = state.get("memory", {})
        self.method = state.get("method", self.method)

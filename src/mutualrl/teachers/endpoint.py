"""A teacher behind an OpenAI-compatible HTTP server (vLLM, llama.cpp server, Ollama).

Scores come from the server's token log-probabilities (`/completions` with `echo` and
`logprobs`): all prompts of a batch in one request (`batch`, vLLM), or, on servers that refuse
a list of prompts (llama.cpp's server answers HTTP 500), one prompt per request with a bounded
number in flight (`single`). Only where a server gives no log-probabilities at all do scores
come from votes of sampled chat answers (`votes`). `auto` probes in that order on the first
batch and says once which method it uses; the metrics record it as `teacher_scoring`. A server
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
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from mutualrl.envs import Situation
from mutualrl.feedback import PromptFeedback
from mutualrl.teachers.base import Advice
from mutualrl.teachers.prompt import SYSTEM_PROMPT, question
from mutualrl.teachers.text import TextTeacher

log = logging.getLogger(__name__)


SCORING_METHODS = ("auto", "batch", "single", "votes")


class EndpointError(Exception):
    """The server could not give an answer we can use. `refused`: it answered, but not with what
    this way of asking needs (an error status, or no log-probabilities): another way may work.
    Otherwise it could not be reached or its reply was cut short."""

    def __init__(self, message: str, refused: bool = False):
        super().__init__(message)
        self.refused = refused


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
        max_in_flight: int = 4,
    ):
        super().__init__(temperature)
        if method not in SCORING_METHODS:
            raise ValueError(f"method must be one of {', '.join(SCORING_METHODS)}, got {method!r}")
        self.url = url.rstrip("/")
        self.model = model or "default"
        self.method = method
        self.samples, self.timeout, self.retries, self.backoff, self.cooldown = samples, timeout, retries, backoff, cooldown
        self.max_in_flight = max_in_flight
        self.failures = 0
        self._down_until = 0.0
        self._warned = False
        self.memory: dict[str, dict[str, float]] = {}
        self.outcomes: dict[str, list[int]] = {}  # prompt key -> [episodes succeeded, finished] through it
        self.name = f"endpoint:{url}"

    # ------------------------------------------------------------------ prompts

    def user_message(self, situation: Situation) -> str:
        """The question, plus what the student reported about this situation before."""
        key = self.key(situation)
        text = question(situation)
        notes = self.memory.get(key)
        if notes:
            said = "; ".join(f"'{a}' {'helped' if v > 0 else 'hurt'} ({v:+.2f})" for a, v in sorted(notes.items()))
            text += f"\nThe student's experience here: {said}."
        if key in self.outcomes:
            succeeded, finished = self.outcomes[key]
            text += f"\nEpisodes through here succeeded {succeeded} of {finished} times."
        return text

    # ------------------------------------------------------------------ scoring

    def advise(self, situations: Sequence[Situation], envs: Sequence[Any] | None = None) -> list[Advice]:
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
        if self.method != "auto":
            return self._scorers[self.method](situations)
        for method in ("batch", "single", "votes"):
            try:
                scores = self._scorers[method](situations)
            except EndpointError as err:
                if not err.refused or method == "votes":
                    raise  # unreachable: try again later with the same probe, not a worse method
                continue
            self.method = method
            log.info("teacher endpoint %s: scoring by %s", self.url, _METHOD_WORDS[method])
            return scores
        raise AssertionError("unreachable: votes either return or raise")

    @property
    def _scorers(self):
        return {"batch": self._batch_scores, "single": self._single_scores, "votes": self._vote_scores}

    def _logprob_request(self, prompts: str | list[str]) -> dict[str, Any]:
        return {"model": self.model, "prompt": prompts, "max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0.0}

    def _prompts(self, situations: Sequence[Situation]) -> tuple[list[str], list[tuple[int, int]]]:
        """One prompt per (situation, action), and where the action's text lies in it."""
        prompts, spans = [], []
        for s in situations:
            prefix = f"{SYSTEM_PROMPT}\n{self.user_message(s)}\nAnswer: "
            for a in s.actions:
                prompts.append(prefix + a)
                spans.append((len(prefix), len(prefix) + len(a)))
        return prompts, spans

    def _batch_scores(self, situations: Sequence[Situation]) -> np.ndarray:
        """Every prompt in one request (servers that take a list: vLLM, OpenAI-style)."""
        prompts, spans = self._prompts(situations)
        reply = self._post("/completions", self._logprob_request(prompts))
        choices = sorted(reply.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != len(prompts):
            raise EndpointError(f"expected {len(prompts)} choices, got {len(choices)}", refused=True)
        return np.array([_action_loglik(c, span) for c, span in zip(choices, spans)]).reshape(len(situations), -1)

    def _single_scores(self, situations: Sequence[Situation]) -> np.ndarray:
        """One prompt per request, at most `max_in_flight` at once (llama.cpp's server)."""
        prompts, spans = self._prompts(situations)

        def one(prompt: str, span: tuple[int, int]) -> float:
            choices = self._post("/completions", self._logprob_request(prompt)).get("choices") or [{}]
            return _action_loglik(choices[0], span)

        with ThreadPoolExecutor(max_workers=self.max_in_flight) as pool:
            scores = list(pool.map(one, prompts, spans))
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
        last, refused = "no attempt", False
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
                last, refused = f"HTTP {err.code}", True
                if 400 <= err.code < 500 and err.code != 429:
                    raise EndpointError(last, refused=True) from None  # the request itself is wrong: retrying will not help
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                last, refused = type(err).__name__ if not isinstance(err, urllib.error.URLError) else str(err.reason), False
            except (json.JSONDecodeError, UnicodeDecodeError, EndpointError) as err:
                last, refused = f"malformed reply ({type(err).__name__})", False
        raise EndpointError(f"{last} after {self.retries + 1} attempts", refused=refused)

    # ----------------------------------------------------------------- learning

    def update(self, feedback: Sequence[PromptFeedback]) -> dict[str, float]:
        """Write the student's verdicts into the per-prompt memory: each taken action's signal
        (scaled by its spread over the feedback) and how the episodes through the prompt ended."""
        signals = np.stack([f.signal for f in feedback])
        scale = float(np.std(signals[~np.isnan(signals)])) + 1e-8 if (~np.isnan(signals)).any() else 1.0
        for record, row in zip(feedback, signals):
            key = self.key(record.situation)
            notes = self.memory.setdefault(key, {})
            for action, value in zip(record.situation.actions, (row / scale).tolist()):  # plain floats: checkpointable
                if not np.isnan(value):
                    notes[action] = value if action not in notes else 0.5 * (notes[action] + value)
            if record.finished:
                tally = self.outcomes.setdefault(key, [0, 0])
                tally[0] += record.succeeded
                tally[1] += record.finished
        return {"teacher_memory_situations": len(self.memory)}

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "teacher_failures": self.failures, "teacher_scoring": self.method}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "memory": self.memory, "outcomes": self.outcomes, "method": self.method}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.memory = state.get("memory", {})
        self.outcomes = state.get("outcomes", {})
        self.method = {"logprobs": "batch"}.get(state.get("method"), state.get("method", self.method))


_METHOD_WORDS = {"batch": "prompt log-probabilities, all prompts in one request",
                 "single": "prompt log-probabilities, one prompt per request (the server refuses lists)",
                 "votes": "votes of sampled chat answers (the server gives no log-probabilities)"}


def _action_loglik(choice: dict[str, Any], span: tuple[int, int]) -> float:
    """Sum of the log-probabilities of the tokens that lie in `span` of the echoed prompt."""
    lp = choice.get("logprobs") or {}
    offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
    if not isinstance(offsets, list) or not isinstance(values, list) or len(offsets) != len(values):
        raise EndpointError("reply has no prompt log-probabilities", refused=True)
    picked = [v for o, v in zip(offsets, values) if span[0] <= o < span[1]]
    if not picked or any(not isinstance(v, (int, float)) for v in picked):
        raise EndpointError("reply has no log-probabilities for the action tokens", refused=True)
    return float(sum(picked))

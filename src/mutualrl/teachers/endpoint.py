"""A teacher behind an OpenAI-compatible HTTP server (vLLM, llama.cpp server, Ollama).

Scores come from the server's token log-probabilities (`/completions` with `echo` and
`logprobs`): all prompts of a batch in one request (`batch`, vLLM), or, on servers that refuse
a list of prompts (llama.cpp's server answers HTTP 500), one prompt per request with a bounded
number in flight (`single`). Only where a server gives no log-probabilities at all do scores
come from votes of sampled chat answers (`votes`). `auto` probes in that order on the first
batch and says once which method it uses, with the latency it measured; the metrics record it
as `teacher_scoring`.

Slow is not down. The first request is sent alone, with the generous bound `timeout`, and its
latency sets how many requests go in flight at once and how long each may take (never more than
`timeout`). A request that outlives its measured timeout is sent again with the full bound; only
a failure to connect, or no answer within the full bound, counts as the server being down. An
HTTP error answer refuses that way of asking and is never retried (429 and 503 say "busy" and
are). A server that is down never stops the run: the teacher answers "no advice" (counted with
its reason), says so once in the log, and tries the server again after `cooldown` seconds.

It cannot change its weights, so it learns from feedback through its prompt: a per-situation
memory of the actions the student found good or bad.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from mutualrl.envs import Situation
from mutualrl.feedback import PromptFeedback
from mutualrl.teachers.base import Advice
from mutualrl.teachers.prompt import system_prompt, user_message
from mutualrl.teachers.text import TextTeacher

log = logging.getLogger(__name__)


SCORING_METHODS = ("auto", "batch", "single", "votes")
#: HTTP answers that mean "busy, ask again later", not "this way of asking is refused"
BUSY_CODES = (429, 503)
#: a measured timeout is this many times the expected wait, and never under MIN_TIMEOUT seconds
TIMEOUT_MARGIN, MIN_TIMEOUT = 4.0, 5.0
#: the teacher sets the run's pace (and says so, once) where waiting for it is more than this share of the time
TOO_SLOW_SHARE = 0.5
#: ... once it has waited this many seconds since the last report (an iteration)
SLOW_AFTER = 10.0


class EndpointError(Exception):
    """The server could not give an answer we can use. `refused`: it answered, but not with what
    this way of asking needs (an error status, or no log-probabilities): another way may work.
    Otherwise it could not be reached, or gave no answer within the full bound."""

    def __init__(self, message: str, refused: bool = False):
        super().__init__(message)
        self.refused = refused


class Latency:
    """What the requests took: a moving average of seconds per prompt sets the next timeouts,
    and the sums since the last report become the metrics."""

    def __init__(self) -> None:
        self.per_prompt: float | None = None  # None until the first answer
        self.requests, self.seconds, self.waited = 0, 0.0, 0.0  # since the last report
        self.since = time.monotonic()

    def record(self, seconds: float, prompts: int) -> None:
        value = seconds / max(1, prompts)
        self.per_prompt = value if self.per_prompt is None else 0.8 * self.per_prompt + 0.2 * value
        self.requests += 1
        self.seconds += seconds

    def report(self) -> tuple[int, float, float]:
        """(requests, mean seconds per request, seconds the caller waited) since the last report."""
        out = (self.requests, self.seconds / max(1, self.requests), self.waited)
        self.requests, self.seconds, self.waited, self.since = 0, 0.0, 0.0, time.monotonic()
        return out


class EndpointTeacher(TextTeacher):
    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        method: str = "auto",
        samples: int = 8,
        timeout: float = 120.0,
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
        self.latency = Latency()
        self.failures = 0
        self.unadvised, self.unadvised_reason = 0, ""  # states without advice since the last report, and why
        self._down_until = 0.0
        self._down_reason = ""
        self._said: set[str] = set()  # notices already given once
        self.memory: dict[str, dict[str, float]] = {}
        self.outcomes: dict[str, list[int]] = {}  # prompt key -> [episodes succeeded, finished] through it
        self.name = f"endpoint:{url}"

    # ------------------------------------------------------------------ prompts

    def user_message(self, situation: Situation) -> str:
        """The question, plus what the student reported about this situation before."""
        key = self.key(situation)
        text = user_message(situation)
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
            return self._no_advice(situations, f"server down ({self._down_reason}); tried again after the cooldown")
        start = time.monotonic()
        try:
            advice = super().advise(situations)
        except EndpointError as err:
            if not self._down_reason:  # said at each fall, not at each failed try during one
                log.warning("teacher endpoint %s unavailable (%s); going on without advice, trying again every %.0f s",
                            self.url, err, self.cooldown)
            self._down_until, self._down_reason = time.monotonic() + self.cooldown, str(err)
            return self._no_advice(situations, f"server down ({err})")
        finally:
            self.latency.waited += time.monotonic() - start
            self._check_pace()
        if self._down_reason:
            log.warning("teacher endpoint %s answers again; advising", self.url)
            self._down_reason = ""
        return advice

    def _no_advice(self, situations: Sequence[Situation], reason: str) -> list[Advice]:
        self.failures += len(situations)
        self.unadvised += len(situations)
        self.unadvised_reason = reason
        return [Advice(probs=np.full(len(s.actions), 1 / len(s.actions)), available=False) for s in situations]

    def _say_once(self, what: str, level: int, message: str, *args: Any) -> None:
        if what not in self._said:
            self._said.add(what)
            log.log(level, message, *args)

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
            self._say_once("method", logging.INFO, "teacher endpoint %s: scoring by %s; %.2f s per prompt measured, "
                           "at most %d requests in flight", self.url, _METHOD_WORDS[method], self.latency.per_prompt or 0.0,
                           self._in_flight())
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
            # a cloze's reply begins with its lead, and each word follows it after a space
            prefix = f"{system_prompt(s)}\n{self.user_message(s)}\n" + (s.description if s.cloze else "Answer: ")
            for a in s.actions:
                a = " " + a if s.cloze else a
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
        """One prompt per request (llama.cpp's server): the first alone while the latency is unknown,
        then at most `_in_flight()` at once."""
        prompts, spans = self._prompts(situations)

        def one(prompt: str, span: tuple[int, int]) -> float:
            choices = self._post("/completions", self._logprob_request(prompt)).get("choices") or [{}]
            return _action_loglik(choices[0], span)

        scores = [one(prompts[0], spans[0])] if self.latency.per_prompt is None else []
        with ThreadPoolExecutor(max_workers=self._in_flight()) as pool:
            scores += list(pool.map(one, prompts[len(scores):], spans[len(scores):]))
        return np.array(scores).reshape(len(situations), -1)

    def _in_flight(self) -> int:
        """Requests sent at once: as many as a server that answers one at a time clears well within
        the full timeout, at most `max_in_flight`; one while the latency is unknown."""
        if self.latency.per_prompt is None:
            return 1
        return int(np.clip(self.timeout // (2 * TIMEOUT_MARGIN * self.latency.per_prompt), 1, self.max_in_flight))

    def _timeout(self, prompts: int) -> float:
        """How long a request of `prompts` prompts may take before it is sent again with the full
        bound: a margin over the measured wait behind the other requests in flight."""
        if self.latency.per_prompt is None:
            return self.timeout
        expected = self.latency.per_prompt * prompts * self._in_flight()
        return float(np.clip(TIMEOUT_MARGIN * expected, MIN_TIMEOUT, self.timeout))

    def _vote_scores(self, situations: Sequence[Situation]) -> np.ndarray:
        rows = []
        for s in situations:
            reply = self._post("/chat/completions", {
                "model": self.model, "n": self.samples, "temperature": 1.0, "max_tokens": 8,
                "messages": [{"role": "system", "content": system_prompt(s)}, {"role": "user", "content": self.user_message(s)}],
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
        """POST and wait. A refusal (an HTTP error answer) raises at once. A request that outlives
        its measured timeout is sent again with the full bound (slow, not failed: no retry is
        spent); no answer within the full bound raises as the server being down. A busy answer, a
        lost connection or a reply cut short is tried again `retries` times with backoff."""
        data = json.dumps(body).encode()
        prompts = len(body["prompt"]) if isinstance(body.get("prompt"), list) else 1
        timeout, failed = self._timeout(prompts), 0
        while True:
            request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
            start = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    reply = json.loads(response.read().decode())
            except urllib.error.HTTPError as err:
                if err.code not in BUSY_CODES:
                    raise EndpointError(f"HTTP {err.code}", refused=True) from None  # asking again will not help
                last = f"HTTP {err.code} (busy)"
            except (TimeoutError, socket.timeout, urllib.error.URLError) as err:
                if isinstance(err, urllib.error.URLError) and not isinstance(err.reason, (TimeoutError, socket.timeout)):
                    last = f"cannot connect ({err.reason})"
                elif timeout >= self.timeout:  # no answer within the full bound: down, whatever the retries
                    raise EndpointError(f"no answer within {self.timeout:g} s") from None
                else:  # past the measured timeout only: slow, not failed; wait the full bound this time
                    timeout = self.timeout
                    continue
            except (ConnectionError, OSError) as err:
                last = f"connection lost ({type(err).__name__})"
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                last = f"malformed reply ({type(err).__name__})"
            else:
                if not isinstance(reply, dict):
                    raise EndpointError("reply is not a JSON object", refused=True)
                self.latency.record(time.monotonic() - start, prompts)
                return reply
            failed += 1
            if failed > self.retries:
                raise EndpointError(f"{last}, {failed} attempts")
            time.sleep(self.backoff * 2 ** (failed - 1))

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

    def stats(self, frames: int = 0) -> dict[str, Any]:
        """Counters, and since the last call: requests, their mean latency, the seconds spent
        waiting for the server per 1,024 of the `frames` run meanwhile, and the states left
        without advice and why."""
        requests, mean, waited = self.latency.report()
        row = {**super().stats(), "teacher_failures": self.failures, "teacher_scoring": self.method,
               "teacher_requests": requests, "teacher_latency_s": mean, "teacher_unadvised": self.unadvised,
               "teacher_unadvised_reason": self.unadvised_reason}
        if frames:
            row["teacher_wait_per_1024_frames"] = waited * 1024 / frames
        self.unadvised, self.unadvised_reason = 0, ""
        return row

    def _check_pace(self) -> None:
        """Say once, as soon as it shows, that waiting for the server sets the run's pace, and what to change."""
        waited, wall = self.latency.waited, time.monotonic() - self.latency.since
        if waited > SLOW_AFTER and waited > TOO_SLOW_SHARE * wall and self.latency.per_prompt is not None:
            self._say_once("slow", logging.WARNING, "teacher endpoint %s sets this run's pace: %.1f s per prompt, %d "
                           "in flight, %.0f%% of the time spent waiting for it. To go faster: --teacher-budget N "
                           "(reads per iteration), a server that scores a list of prompts in one request (vLLM), "
                           "or a GPU server", self.url, self.latency.per_prompt, self._in_flight(), 100 * waited / wall)

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

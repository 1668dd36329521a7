"""RL -> LLM: the student's verdict on each prompt, from real returns and its own critic.

`build_feedback` (action advice) and `build_subgoal_feedback` are the functions to edit to change
what the teacher learns from. They turn a rollout into one `PromptFeedback` per distinct prompt;
records of later rollouts merge into it by addition, until the teacher learns from them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from mutualrl.envs import Situation
from mutualrl.rollout import HELD, Rollout


@dataclass
class PromptFeedback:
    """What the student found about one prompt, as sums over its visits (so records merge by adding).

    `signal` per action is the mean feedback signal (the critic's advantage, or its one-step TD
    error) where the student took that action, NaN where it never did; `policy` is the student's
    own action distribution there, without advice (what its training on all earlier returns made
    of it); `outcome` the share of finished episodes through the prompt that succeeded."""

    situation: Situation
    visits: int
    counts: np.ndarray  # (A,) times each action was taken
    signal_sum: np.ndarray  # (A,) sum of the signal over the steps that took each action
    policy_sum: np.ndarray  # (A,) sum of the student's own probabilities over the visits
    finished: int  # visits whose episode has finished
    succeeded: int  # of those, the ones that reached the goal

    @property
    def signal(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.signal_sum / self.counts, np.nan)

    @property
    def policy(self) -> np.ndarray:
        return self.policy_sum / self.visits

    @property
    def outcome(self) -> float:
        return self.succeeded / self.finished if self.finished else float("nan")

    def merge(self, other: "PromptFeedback") -> "PromptFeedback":
        return PromptFeedback(self.situation, self.visits + other.visits, self.counts + other.counts,
                              self.signal_sum + other.signal_sum, self.policy_sum + other.policy_sum,
                              self.finished + other.finished, self.succeeded + other.succeeded)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint (loadable with `torch.load(weights_only=True)`)."""
        s = self.situation
        return {"situation": [s.mission, s.description, list(s.actions), s.last_action, s.question, s.cloze], "visits": self.visits,
                "counts": self.counts.tolist(), "signal_sum": self.signal_sum.tolist(),
                "policy_sum": self.policy_sum.tolist(), "finished": self.finished, "succeeded": self.succeeded}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PromptFeedback":
        mission, description, actions, last, *rest = d["situation"]  # (older records lack the last fields)
        return cls(Situation(mission, description, tuple(actions), last, *rest), d["visits"], np.array(d["counts"]),
                   np.array(d["signal_sum"]), np.array(d["policy_sum"]), d["finished"], d["succeeded"])


def td_errors(rollout: Rollout, gamma: float) -> torch.Tensor:
    """One-step TD errors r + gamma * V(s') - V(s) of the critic, (steps, envs)."""
    following = torch.cat([rollout.values[1:], rollout.next_value[None]])
    return rollout.rewards + gamma * following * (1 - rollout.dones) - rollout.values


def build_feedback(rollout: Rollout, advantages: torch.Tensor, policy: torch.Tensor, signal: str,
                   gamma: float) -> dict[str, PromptFeedback]:
    """One record per distinct prompt of the rollout, keyed by the teacher's prompt key.

    `policy` (steps, envs, A) is the student's own action distribution; `signal` picks what the
    teacher learns from: `advantage` (GAE, the return-based verdict) or `td_error` (the one-step
    verdict of the critic, the seed paper's signal)."""
    values = (advantages if signal == "advantage" else td_errors(rollout, gamma)).flatten().cpu().numpy()
    actions, probs = rollout.actions.flatten().cpu().numpy(), policy.flatten(0, 1).cpu().numpy().astype(np.float64)
    outcomes = rollout.episode_outcomes().flatten()
    index: dict[str, int] = {}
    which = np.array([index.setdefault(key, len(index)) for key in rollout.flat_keys()])
    situation_of = dict(zip(which.tolist(), (s for row in rollout.situations for s in row)))  # visits of a key share its text
    prompts, n_actions = len(index), probs.shape[-1]
    counts, signal_sum, policy_sum = np.zeros((prompts, n_actions)), np.zeros((prompts, n_actions)), np.zeros((prompts, n_actions))
    np.add.at(counts, (which, actions), 1)
    np.add.at(signal_sum, (which, actions), values)
    np.add.at(policy_sum, which, probs)
    visits = np.bincount(which, minlength=prompts)
    finished = np.bincount(which, weights=~np.isnan(outcomes), minlength=prompts)
    succeeded = np.bincount(which, weights=outcomes == 1.0, minlength=prompts)
    records = {}
    for key, i in index.items():
        s = situation_of[i]
        records[key] = PromptFeedback(dataclasses.replace(s, last_action=None), int(visits[i]), counts[i],
                                      signal_sum[i], policy_sum[i], int(finished[i]), int(succeeded[i]))
    return records


def merge_feedback(pending: dict[str, PromptFeedback], new: dict[str, PromptFeedback]) -> dict[str, PromptFeedback]:
    """Records of later rollouts added to those still waiting for the teacher, prompt by prompt."""
    merged = dict(pending)
    for key, record in new.items():
        merged[key] = merged[key].merge(record) if key in merged else record
    return merged


def build_subgoal_feedback(rollout: Rollout, advantages: torch.Tensor, signal: str, gamma: float,
                           key: Callable[[Situation], str]) -> dict[str, PromptFeedback]:
    """One record per grounding cloze read for a subgoal, keyed by the teacher's prompt key.

    Each decision gives every cloze that had a part in its choice one count, on the answer the
    choice amounted to (the chosen object's colour and kind; never the verb, `verdicts.judged`),
    with the signal of the steps spent under the subgoal (their mean advantage or TD error), the
    episode's outcome, and the teacher's own probabilities there as the policy the choice was drawn
    from. Hindsight records (an object the student itself went to or picked up,
    `SubgoalGuidance._note_hindsight`) count the same way, with that step's signal and the teacher's
    last answers as the policy (with a uniform one, measured, the update pulled a sure and right
    zero-shot teacher towards doubt: subgoal accuracy 1.00 -> 0.90 on `GoToLocal`). Decisions made
    from an older version's answers (`stale`) are left out: the update moves the current teacher's
    probabilities, and measured, their many records drowned the hindsight ones. A verb judged by
    whether the act completed the mission (`completion`) carries that verdict as its signal."""
    values = (advantages if signal == "advantage" else td_errors(rollout, gamma)).cpu().numpy()
    outcomes = rollout.episode_outcomes()
    steps = values.shape[0]
    records: dict[str, PromptFeedback] = {}
    for d in [d for d in rollout.decisions if not d.stale] + (rollout.hindsight or []):
        end = steps if d.end is None else d.end
        value = float(values[d.start:end, d.env].mean()) if d.verdict is None else d.verdict
        outcome = outcomes[d.start, d.env]
        for question, answer, probs in zip(d.questions, d.answers, d.probs):
            if answer < 0 and answer != HELD:  # a cloze with no part in this choice
                continue
            counts = np.zeros(len(question.actions))
            if answer >= 0:
                counts[answer] = 1
            record = PromptFeedback(question, 1, counts, counts * value, np.asarray(probs, dtype=np.float64),
                                    int(not np.isnan(outcome)), int(outcome == 1.0))
            k = key(question)
            records[k] = records[k].merge(record) if k in records else record
    return records

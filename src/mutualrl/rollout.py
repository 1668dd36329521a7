"""One iteration's experience as typed records: what every environment copy saw, was advised,
did and got, step by step. Guidance writes the advice, the student learns from the whole, and
feedback reads it once to tell the teacher what paid off."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from mutualrl.envs import Situation


@dataclass
class AdviceRecord:
    """The teacher's advice at one step of every copy, and what the student saw of it.

    Shapes are (envs, ...) for one step and (steps, envs, ...) once stacked. Without a guiding
    teacher every tensor is zero: the student then acts and learns exactly as alone."""

    probs: torch.Tensor  # (..., D) the advice: a distribution over the A actions, or a subgoal's mask and verb
    available: torch.Tensor  # (...) 1 where the teacher answered
    shown: torch.Tensor  # (..., D) the advice as the student's input (zeros where it was not shown)
    gate: torch.Tensor  # (...) how far the input is the advice rather than the student's own grounding
    logits: torch.Tensor  # (..., A) added to the student's logits: weight * lambda * trust * log(advice)
    trust: torch.Tensor  # (...) the student's trust in this step's advice when it acted

    @classmethod
    def none(cls, envs: int, advice_dim: int, actions: int, device: torch.device) -> "AdviceRecord":
        zeros, no = torch.zeros(envs, advice_dim, device=device), torch.zeros(envs, device=device)
        return cls(zeros, no, zeros, no, torch.zeros(envs, actions, device=device), no)

    @classmethod
    def stack(cls, steps: list["AdviceRecord"]) -> "AdviceRecord":
        return cls(**{f.name: torch.stack([getattr(s, f.name) for s in steps]) for f in fields(cls)})

    def flat(self) -> "AdviceRecord":
        """(steps, envs, ...) -> (steps * envs, ...), for minibatches."""
        return AdviceRecord(**{f.name: flatten(getattr(self, f.name)) for f in fields(self)})


#: a decision's answer to a cloze it read but does not judge: the update holds that cloze where it
#: stands (`feedback.build_subgoal_feedback`), as against -1, a cloze with no part in the choice
HELD = -2


@dataclass
class SubgoalDecision:
    """One time a copy asked for a subgoal: the grounding clozes read (`grounding`), the answer
    the choice amounted to in each (-1 where a cloze had no part in it, `HELD` where it is not
    judged but held), and the teacher's probabilities there. It covers steps `start` to `end` of
    its rollout."""

    env: int
    start: int
    questions: list[Situation]
    answers: list[int]
    probs: list[np.ndarray]
    end: int | None = None  # set when the subgoal ends within this rollout
    reached: bool = False
    stale: bool = False  # chosen from an older teacher version's answers (the budget deferred the re-read)
    verdict: float | None = None  # fixed when recorded (`completion`), in place of the critic's signal

    def continued(self) -> "SubgoalDecision":
        """The same choice, held on into the next rollout from its first step."""
        return SubgoalDecision(self.env, 0, self.questions, self.answers, self.probs, stale=self.stale)


@dataclass
class Rollout:
    """`num_steps` steps of every copy, shaped (steps, envs, ...)."""

    obs: dict[str, torch.Tensor]
    advice: AdviceRecord
    actions: torch.Tensor
    logprobs: torch.Tensor  # of the actions under the policy that acted (advice included)
    values: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor  # 1 where the episode ended at this step (terminated or truncated)
    successes: np.ndarray  # True where the episode ended here with the goal reached
    next_value: torch.Tensor  # (envs,) value of the state after the last step, seen without advice
    situations: list[list[Situation]] | None  # the text of each state, where the mode has a teacher
    keys: list[list[str]] | None  # each state's prompt key (with subgoals: the held subgoal's; '' if none)
    decisions: list[SubgoalDecision] | None = None  # with subgoal advice: when each copy asked, and what came of it
    hindsight: list[SubgoalDecision] | None = None  # the objects the student itself went to or picked up
    starts: torch.Tensor | None = None  # 1 where an episode began at this step (its memory was reset)
    memory: torch.Tensor | None = None  # (envs, ...) a recurrent student's memory before the first step

    @property
    def flat_obs(self) -> dict[str, torch.Tensor]:
        return {k: flatten(v) for k, v in self.obs.items()}

    def flat_keys(self) -> list[str]:
        return [key for row in self.keys for key in row]

    def episode_outcomes(self) -> np.ndarray:
        """For each (step, env), whether the episode through it succeeded: 1, 0, or NaN if unfinished."""
        dones = self.dones.cpu().numpy().astype(bool)
        steps, envs = dones.shape
        outcome = np.full((steps, envs), np.nan)
        current = np.full(envs, np.nan)
        for t in reversed(range(steps)):
            current = np.where(dones[t], self.successes[t].astype(float), current)
            outcome[t] = current
        return outcome


def flatten(x: torch.Tensor) -> torch.Tensor:
    """(steps, envs, ...) -> (steps * envs, ...)."""
    return x.reshape(-1, *x.shape[2:])

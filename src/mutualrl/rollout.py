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

    probs: torch.Tensor  # (..., A) the teacher's distribution over the actions
    available: torch.Tensor  # (...) 1 where the teacher answered
    shown: torch.Tensor  # (..., A) the advice as the student's input (zeros where it was not shown)
    logits: torch.Tensor  # (..., A) added to the student's logits: weight * lambda * trust * log(advice)
    trust: torch.Tensor  # (...) the student's trust in this step's advice when it acted

    @classmethod
    def none(cls, envs: int, actions: int, device: torch.device) -> "AdviceRecord":
        zeros = torch.zeros(envs, actions, device=device)
        return cls(zeros, torch.zeros(envs, device=device), zeros, zeros, torch.zeros(envs, device=device))

    @classmethod
    def stack(cls, steps: list["AdviceRecord"]) -> "AdviceRecord":
        return cls(**{f.name: torch.stack([getattr(s, f.name) for s in steps]) for f in fields(cls)})

    def flat(self) -> "AdviceRecord":
        """(steps, envs, ...) -> (steps * envs, ...), for minibatches."""
        return AdviceRecord(**{f.name: flatten(getattr(self, f.name)) for f in fields(self)})


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
    keys: list[list[str]] | None  # each state's prompt key, as the teacher names it

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

"""PPO for the student, in CleanRL's structure (GAE, clipped policy and value losses, entropy
bonus, gradient clipping, minibatches), with the guidance term: lambda * trust * CE(teacher ||
student), which distils the advice into the student. A student with memory learns from whole
sequences, re-read from the memory each began with (recurrent PPO).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from mutualrl.config import PPOConfig
from mutualrl.rollout import Rollout, flatten
from mutualrl.student import Student


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns, shaped (steps, envs).

    `dones[t]` is 1 where the episode ended at step t (terminated or truncated), so no value
    is bootstrapped across the reset. Truncation is treated as termination, as in CleanRL.
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        following_value = next_value if t == steps - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * following_value * not_done - values[t]
        last = delta + gamma * gae_lambda * not_done * last
        advantages[t] = last
    return advantages, advantages + values


@dataclass
class PPOBatch:
    """A flattened rollout, ready for minibatch updates."""

    obs: dict[str, torch.Tensor]
    advice: torch.Tensor  # (B, D) what the student saw (zeros where no advice was shown)
    gate: torch.Tensor  # (B,) how far its input was the advice rather than its own grounding
    advice_logits: torch.Tensor  # (B, A) added to the student's logits when acting (zeros without advice)
    teacher_probs: torch.Tensor  # (B, D) the teacher's advice, for the guidance term
    guidance_weight: torch.Tensor  # (B,) lambda * trust, zero where there was no advice
    actions: torch.Tensor
    logprobs: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    values: torch.Tensor
    starts: torch.Tensor  # (B,) 1 where an episode begins at this step
    memory: torch.Tensor | None = None  # (envs, 2 * memory) a recurrent student's memory at the first step

    @classmethod
    def from_rollout(cls, rollout: Rollout, advantages: torch.Tensor, returns: torch.Tensor,
                     guidance_weight: torch.Tensor) -> "PPOBatch":
        advice = rollout.advice.flat()
        return cls(obs=rollout.flat_obs, advice=advice.shown, gate=advice.gate, advice_logits=advice.logits,
                   teacher_probs=advice.probs,
                   guidance_weight=flatten(guidance_weight), actions=flatten(rollout.actions),
                   logprobs=flatten(rollout.logprobs), advantages=flatten(advantages), returns=flatten(returns),
                   values=flatten(rollout.values), starts=flatten(rollout.starts), memory=rollout.memory)

    def __len__(self) -> int:
        return self.actions.shape[0]

    def subset(self, idx: torch.Tensor, memory: torch.Tensor | None = None) -> "PPOBatch":
        rows = {name: getattr(self, name)[idx] for name in self.__dataclass_fields__ if name not in ("obs", "memory")}
        return PPOBatch(obs={k: v[idx] for k, v in self.obs.items()}, memory=memory, **rows)

    def minibatches(self, count: int, generator: torch.Generator | None = None) -> Iterator["PPOBatch"]:
        """One epoch's random minibatches. For a student with memory a minibatch is whole sequences:
        every step of some copies, in time order, with their memory at the first step."""
        device = self.actions.device
        if self.memory is None:
            order = torch.randperm(len(self), generator=generator).to(device)
            size = max(1, len(self) // count)
            for start in range(0, len(self), size):
                yield self.subset(order[start : start + size])
            return
        envs = len(self.memory)
        order = torch.randperm(envs, generator=generator).to(device)
        size = max(1, envs // count)
        steps = torch.arange(len(self) // envs, device=device)[:, None] * envs
        for start in range(0, envs, size):
            copies = order[start : start + size]
            yield self.subset((steps + copies).flatten(), self.memory[copies])


def minibatch_losses(model: Student, mb: PPOBatch, clip_coef: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """PPO's terms on one minibatch, unweighted: the clipped policy loss, the clipped value loss,
    the entropy and the guidance loss; and the log ratio of new to old action probabilities."""
    read = model.read(mb.obs)
    logits, value, _ = model(mb.obs, mb.advice, mb.gate, mb.memory, mb.starts, read)
    dist = Categorical(logits=logits + mb.advice_logits)
    log_ratio = dist.log_prob(mb.actions) - mb.logprobs
    ratio = log_ratio.exp()
    adv = mb.advantages
    adv = (adv - adv.mean()) / (adv.std() + 1e-8) if len(adv) > 1 else adv
    pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    v_clipped = mb.values + (value - mb.values).clamp(-clip_coef, clip_coef)
    v_loss = 0.5 * torch.max((value - mb.returns) ** 2, (v_clipped - mb.returns) ** 2).mean()
    guidance_loss = logits.new_zeros(())
    if mb.guidance_weight.any():  # (untrusted advice weighs nothing: skip the student's grounding pass)
        guidance_loss = (mb.guidance_weight * model.distill_loss(read, mb.teacher_probs, logits)).mean()
    return {"pg_loss": pg_loss, "v_loss": v_loss, "entropy": dist.entropy().mean(), "guidance_loss": guidance_loss}, log_ratio


def weighted(terms: dict[str, torch.Tensor], config: PPOConfig) -> dict[str, torch.Tensor]:
    """The terms as the loss sums them (in this order)."""
    return {"pg_loss": terms["pg_loss"], "entropy": -config.ent_coef * terms["entropy"],
            "v_loss": config.vf_coef * terms["v_loss"], "guidance_loss": terms["guidance_loss"]}


def ppo_update(
    model: Student,
    optimizer: torch.optim.Optimizer,
    batch: PPOBatch,
    config: PPOConfig,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """PPO epochs over one rollout; returns CleanRL-style diagnostics."""
    stats: dict[str, list[float]] = {k: [] for k in ("pg_loss", "v_loss", "entropy", "guidance_loss", "approx_kl", "clipfrac")}
    for _ in range(config.update_epochs):
        for mb in batch.minibatches(config.minibatches, generator):
            terms, log_ratio = minibatch_losses(model, mb, config.clip_coef)
            loss = sum(weighted(terms, config).values())
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                ratio = log_ratio.exp()
                stats["approx_kl"].append(((ratio - 1) - log_ratio).mean().item())
                stats["clipfrac"].append(((ratio - 1).abs() > config.clip_coef).float().mean().item())
            for name, term in terms.items():
                stats[name].append(term.item())
    return {k: float(np.mean(v)) for k, v in stats.items()}

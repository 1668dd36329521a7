"""The RL student: an actor-critic over the symbolic observation plus advice, trained with PPO.

PPO follows CleanRL's structure (GAE, clipped policy and value losses, entropy bonus, gradient
clipping, minibatches) with two additions for guidance. The acting policy is a product of experts,
softmax(student logits + advice_logits), where `advice_logits` = weight * log(advice) on advised
steps (zero elsewhere), so good advice steers exploration from the first step; it is part of the
policy's input, so PPO's ratios stay on-policy. And lambda * CE(teacher || student's own logits)
distils the advice into the network, so the student also acts well without a teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from mutualrl.config import PPOConfig
from mutualrl.envs import MISSION_VOCAB, encode_mission
from mutualrl.rollout import Rollout, flatten

_NUM_OBJECTS, _NUM_COLORS, _NUM_STATES = 11, 6, 3


class ActorCritic(nn.Module):
    """Policy and value over (image, direction, mission words, advice distribution).

    `advice` is a distribution over the task's text actions, or all zeros when there is
    none, so a student trained alone and one trained with a teacher share one interface.
    """

    def __init__(self, num_actions: int, hidden: int = 64, cell_dim: int = 8):
        super().__init__()
        self.num_actions = num_actions
        self.object_emb = nn.Embedding(_NUM_OBJECTS, cell_dim)
        self.color_emb = nn.Embedding(_NUM_COLORS, cell_dim)
        self.state_emb = nn.Embedding(_NUM_STATES, cell_dim)
        self.direction_emb = nn.Embedding(4, 8)
        self.word_emb = nn.Embedding(len(MISSION_VOCAB) + 1, 16, padding_idx=len(MISSION_VOCAB))
        features = 7 * 7 * cell_dim + 8 + 16 + num_actions
        self.trunk = nn.Sequential(
            nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.actor = nn.Linear(hidden, num_actions)
        self.critic = nn.Linear(hidden, 1)
        nn.init.orthogonal_(self.actor.weight, 0.01)
        nn.init.zeros_(self.actor.bias)

    def features(self, obs: dict[str, torch.Tensor], advice: torch.Tensor) -> torch.Tensor:
        image = obs["image"].long()
        cells = (
            self.object_emb(image[..., 0].clamp(max=_NUM_OBJECTS - 1))
            + self.color_emb(image[..., 1].clamp(max=_NUM_COLORS - 1))
            + self.state_emb(image[..., 2].clamp(max=_NUM_STATES - 1))
        )
        words = obs["mission"]  # word ids, -1 = padding
        present = (words >= 0).float().sum(1, keepdim=True).clamp(min=1)
        mission = self.word_emb(words.masked_fill(words < 0, len(MISSION_VOCAB))).sum(1) / present
        x = torch.cat([cells.flatten(1), self.direction_emb(obs["direction"].long()), mission, advice], dim=1)
        return self.trunk(x)

    def forward(self, obs: dict[str, torch.Tensor], advice: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Action logits and state values."""
        h = self.features(obs, advice)
        return self.actor(h), self.critic(h).squeeze(-1)

    def act(self, obs, advice, advice_logits: torch.Tensor | None = None, greedy: bool = False):
        """Sampled (or greedy) actions of softmax(logits + advice_logits), their log-probabilities, the values."""
        logits, value = self(obs, advice)
        if advice_logits is not None:
            logits = logits + advice_logits
        dist = Categorical(logits=logits)
        action = logits.argmax(-1) if greedy else dist.sample()
        return action, dist.log_prob(action), value

    def own_policy(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The student's action distribution without advice (no gradient): what it would do alone."""
        batch = obs["direction"].shape[0]
        with torch.no_grad():
            logits, _ = self(obs, torch.zeros(batch, self.num_actions, device=obs["direction"].device))
        return torch.softmax(logits, -1)


def obs_to_tensors(obs: dict, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The symbolic part of a (vectorised) MiniGrid observation as tensors."""
    missions = np.stack([encode_mission(m) for m in obs["mission"]])
    return {
        "image": torch.as_tensor(np.asarray(obs["image"]), device=device),
        "direction": torch.as_tensor(np.asarray(obs["direction"]), device=device),
        "mission": torch.as_tensor(missions, device=device),
    }


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
    advice: torch.Tensor  # (B, A) what the student saw (zeros where no advice was shown)
    advice_logits: torch.Tensor  # (B, A) added to the student's logits when acting (zeros without advice)
    teacher_probs: torch.Tensor  # (B, A) the teacher's advice, for the guidance term
    guidance_weight: torch.Tensor  # (B,) lambda * trust, zero where there was no advice
    actions: torch.Tensor
    logprobs: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    values: torch.Tensor

    @classmethod
    def from_rollout(cls, rollout: Rollout, advantages: torch.Tensor, returns: torch.Tensor,
                     guidance_weight: torch.Tensor) -> "PPOBatch":
        advice = rollout.advice.flat()
        return cls(obs=rollout.flat_obs, advice=advice.shown, advice_logits=advice.logits, teacher_probs=advice.probs,
                   guidance_weight=flatten(guidance_weight), actions=flatten(rollout.actions),
                   logprobs=flatten(rollout.logprobs), advantages=flatten(advantages), returns=flatten(returns),
                   values=flatten(rollout.values))

    def __len__(self) -> int:
        return self.actions.shape[0]

    def subset(self, idx: torch.Tensor) -> "PPOBatch":
        return PPOBatch(
            obs={k: v[idx] for k, v in self.obs.items()},
            **{name: getattr(self, name)[idx] for name in self.__dataclass_fields__ if name != "obs"},
        )


def ppo_update(
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: PPOBatch,
    config: PPOConfig,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """PPO epochs over one rollout; returns CleanRL-style diagnostics."""
    clip_coef = config.clip_coef
    size = len(batch)
    mb_size = max(1, size // config.minibatches)
    stats: dict[str, list[float]] = {k: [] for k in ("pg_loss", "v_loss", "entropy", "guidance_loss", "approx_kl", "clipfrac")}
    for _ in range(config.update_epochs):
        order = torch.randperm(size, generator=generator).to(batch.actions.device)
        for start in range(0, size, mb_size):
            mb = batch.subset(order[start : start + mb_size])
            logits, value = model(mb.obs, mb.advice)
            dist = Categorical(logits=logits + mb.advice_logits)
            new_logprob = dist.log_prob(mb.actions)
            log_ratio = new_logprob - mb.logprobs
            ratio = log_ratio.exp()
            adv = mb.advantages
            adv = (adv - adv.mean()) / (adv.std() + 1e-8) if len(adv) > 1 else adv
            pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
            v_clipped = mb.values + (value - mb.values).clamp(-clip_coef, clip_coef)
            v_loss = 0.5 * torch.max((value - mb.returns) ** 2, (v_clipped - mb.returns) ** 2).mean()
            entropy = dist.entropy().mean()
            log_student = torch.log_softmax(logits, dim=-1)
            guidance_loss = (mb.guidance_weight * -(mb.teacher_probs * log_student).sum(-1)).mean()
            loss = pg_loss - config.ent_coef * entropy + config.vf_coef * v_loss + guidance_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                stats["approx_kl"].append(((ratio - 1) - log_ratio).mean().item())
                stats["clipfrac"].append(((ratio - 1).abs() > clip_coef).float().mean().item())
            stats["pg_loss"].append(pg_loss.item())
            stats["v_loss"].append(v_loss.item())
            stats["entropy"].append(entropy.item())
            stats["guidance_loss"].append(guidance_loss.item())
    return {k: float(np.mean(v)) for k, v in stats.items()}

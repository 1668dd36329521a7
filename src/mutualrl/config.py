"""Typed run configuration: one place for defaults, validated with messages that name the value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mutualrl.errors import MutualRLError

MODES = ("rl", "guided", "feedback", "mutual")
DEVICES = ("cpu", "cuda")


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults learn GoToRedBallNoDists quickly."""

    env_id: str = field(default="BabyAI-GoToRedBallNoDists-v0", metadata={"help": "MiniGrid/BabyAI environment id"})
    mode: str = field(default="rl", metadata={"help": "rl | guided (teacher->student) | feedback (student->teacher) | mutual (both)"})
    teacher: str = field(default="smollm2", metadata={"help": "smollm2 | bot | tiny | hf:PATH | endpoint:URL[#MODEL]"})
    teacher_from: str = field(default="", metadata={"help": "run directory whose learnt teacher (adapter, memory) this run starts from"})
    frames: int = field(default=300_000, metadata={"help": "environment frames to train for"})
    seed: int = field(default=0, metadata={"help": "seed of environments, networks and sampling"})
    num_envs: int = field(default=16, metadata={"help": "parallel environment copies"})
    device: str = field(default="cpu", metadata={"help": "cpu | cuda"})
    # --- PPO (student)
    num_steps: int = field(default=64, metadata={"help": "rollout steps per environment per iteration"})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate of the student"})
    gamma: float = field(default=0.99, metadata={"help": "discount factor"})
    gae_lambda: float = field(default=0.95, metadata={"help": "GAE lambda"})
    clip_coef: float = field(default=0.2, metadata={"help": "PPO clip range for policy and value"})
    ent_coef: float = field(default=0.01, metadata={"help": "entropy bonus coefficient"})
    vf_coef: float = field(default=0.5, metadata={"help": "value loss coefficient"})
    max_grad_norm: float = field(default=0.5, metadata={"help": "gradient clipping norm"})
    update_epochs: int = field(default=4, metadata={"help": "PPO epochs per rollout"})
    minibatches: int = field(default=2, metadata={"help": "minibatches per PPO epoch"})
    # --- guidance (teacher -> student)
    guidance_start: float = field(default=1.0, metadata={"help": "lambda of the CE(teacher||student) term at frame 0"})
    guidance_end: float = field(default=1.0, metadata={"help": "lambda after guidance_decay_frames (default: constant; trust gates the pull)"})
    guidance_decay_frames: int = field(default=100_000, metadata={"help": "frames over which lambda decays linearly"})
    advice_prob: float = field(default=0.5, metadata={"help": "probability that the student is shown the advice at a step"})
    advice_weight: float = field(default=1.0, metadata={"help": "the shown advice adds weight * lambda * trust * log(advice) to the student's logits"})
    # --- feedback (student -> teacher)
    teacher_update_every: int = field(default=2, metadata={"help": "iterations between teacher updates (K)"})
    teacher_update_steps: int = field(default=4, metadata={"help": "gradient steps per teacher update"})
    teacher_batch: int = field(default=32, metadata={"help": "prompts per teacher gradient step"})
    teacher_lr: float = field(default=2e-3, metadata={"help": "learning rate of the teacher's LoRA adapter"})
    teacher_kl: float = field(default=0.05, metadata={"help": "weight of KL(teacher || original model) in the teacher update"})
    lora_rank: int = field(default=16, metadata={"help": "LoRA rank of the teacher adapter"})
    lora_layers: int = field(default=1, metadata={"help": "adapt only the top N transformer layers"})
    # --- evaluation, logging, checkpoints
    eval_every: int = field(default=20, metadata={"help": "iterations between held-out evaluations of the student and teacher alone (M); 0 = never"})
    eval_episodes: int = field(default=20, metadata={"help": "episodes per held-out evaluation"})
    checkpoint_every: int = field(default=5, metadata={"help": "iterations between checkpoints"})

    @property
    def frames_per_iteration(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def uses_teacher(self) -> bool:
        return self.mode != "rl"

    @property
    def teacher_guides(self) -> bool:
        return self.mode in ("guided", "mutual")

    @property
    def teacher_learns(self) -> bool:
        return self.mode in ("feedback", "mutual")

    def validate(self) -> "TrainConfig":
        """Raise `MutualRLError` naming the first bad value and what is allowed."""
        from mutualrl.envs import check_env_id

        check_env_id(self.env_id)
        if self.mode not in MODES:
            raise MutualRLError(f"unknown mode {self.mode!r}; allowed: {', '.join(MODES)}")
        if self.device not in DEVICES:
            raise MutualRLError(f"unknown device {self.device!r}; allowed: {', '.join(DEVICES)}")
        positive = ("frames", "num_envs", "num_steps", "update_epochs", "minibatches", "teacher_update_every",
                    "teacher_update_steps", "teacher_batch", "lora_rank", "lora_layers", "eval_episodes",
                    "checkpoint_every", "learning_rate", "teacher_lr")
        for name in positive:
            if getattr(self, name) <= 0:
                raise MutualRLError(f"{name} must be > 0, got {getattr(self, name)}")
        non_negative = ("seed", "advice_weight", "ent_coef", "vf_coef", "max_grad_norm", "guidance_start", "guidance_end",
                        "guidance_decay_frames", "teacher_kl", "eval_every")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise MutualRLError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("gamma", "gae_lambda", "advice_prob", "clip_coef"):
            if not 0 <= getattr(self, name) <= 1:
                raise MutualRLError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.teacher_from and not self.uses_teacher:
            raise MutualRLError(f"teacher_from={self.teacher_from!r} needs a mode with a teacher, not {self.mode!r}")
        if self.minibatches > self.frames_per_iteration:
            raise MutualRLError(
                f"minibatches={self.minibatches} exceeds the {self.frames_per_iteration} frames of one iteration"
            )
        return self

    def guidance_lambda(self, frames: int) -> float:
        """Linear schedule of the guidance weight from `guidance_start` to `guidance_end`."""
        if self.guidance_decay_frames == 0:
            return self.guidance_end
        progress = min(1.0, frames / self.guidance_decay_frames)
        return self.guidance_start + progress * (self.guidance_end - self.guidance_start)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise MutualRLError(f"unknown config key(s) {', '.join(unknown)}; allowed: {', '.join(known)}")
        typed = {}
        for name, value in values.items():
            kind = type(known[name].default)
            try:
                typed[name] = kind(value)
            except (TypeError, ValueError):
                raise MutualRLError(f"config key {name}={value!r} must be of type {kind.__name__}") from None
        return cls(**typed)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise MutualRLError(f"config file {str(path)!r} does not exist")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise MutualRLError(f"config file {str(path)!r} is not valid YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(values, dict):
            raise MutualRLError(f"config file {str(path)!r} must hold a mapping of keys to values")
        return cls.from_dict(values)

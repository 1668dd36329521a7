"""Typed run configuration: one section per component, one place for defaults, validated with
messages that name the value.

`TrainConfig` holds the run's own settings and four sections, each handed whole to the part that
owns it: `ppo` (the student's PPO), `guidance` (teacher -> student, trust), `teacher` (the teacher
and how it learns from feedback) and `evaluation`. Every field name is unique across sections, so
flags (`--teacher-lr`) and flat YAML keys (`teacher_lr: 0.002`) name a field without its section;
nested YAML (`teacher: {lr: 0.002}`) works too. A field whose flat name differs from its name in
the section says so in its metadata (`key`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mutualrl.errors import MutualRLError

MODES = ("rl", "guided", "feedback", "mutual")
DEVICES = ("cpu", "cuda")
#: what a resumed run may change (`Trainer.resume`); the rest is what its student and teacher trained with
RESUME_CHANGES = ("frames", "device", "target_success")
ACTION_SPACES = ("task", "full")
FEEDBACK_SIGNALS = ("advantage", "td_error")
ADVICE_KINDS = ("action", "subgoal")
#: where the mission's verb cloze is judged: never (the language model's reading stays), or at each
#: success, by the act that completed the mission (`completion`)
VERB_JUDGEMENTS = ("never", "at-success")
PRECISIONS = ("auto", "float32", "bfloat16")
HOLDS = ("fixed", "sureness")
STUDENT_ARCHITECTURES = ("film", "mlp")
ACTION_MASKS = ("none", "no-ops")


def _field(default: Any, help: str, key: str | None = None) -> Any:
    metadata = {"help": help} if key is None else {"help": help, "key": key}
    return field(default=default, metadata=metadata)


@dataclass
class PPOConfig:
    """The student's PPO (CleanRL's names and defaults, sized for a 2-core CPU)."""

    num_steps: int = _field(64, "rollout steps per environment per iteration")
    learning_rate: float = _field(1e-3, "Adam learning rate of the student")
    gamma: float = _field(0.99, "discount factor")
    gae_lambda: float = _field(0.95, "GAE lambda")
    clip_coef: float = _field(0.2, "PPO clip range for policy and value")
    ent_coef: float = _field(0.01, "entropy bonus coefficient")
    vf_coef: float = _field(0.5, "value loss coefficient")
    max_grad_norm: float = _field(0.5, "gradient clipping norm")
    update_epochs: int = _field(4, "PPO epochs per rollout")
    minibatches: int = _field(2, "minibatches per PPO epoch")

    def validate(self) -> None:
        _check(self, positive=("num_steps", "learning_rate", "update_epochs", "minibatches"),
               non_negative=("ent_coef", "vf_coef", "max_grad_norm"), unit=("gamma", "gae_lambda", "clip_coef"))


@dataclass
class GuidanceConfig:
    """Teacher -> student: what kind of advice, how often it is asked for and shown, how hard it
    pulls, and trust in it."""

    advice: str = _field("action", "action (a distribution over the actions, every step) | subgoal (a verb and a "
                         "visible object, asked when the last one ends)")
    budget: int = _field(0, "teacher reads (prompts not yet answered at its version) per iteration; 0 = no limit",
                         key="teacher_budget")
    subgoal_steps: int = _field(20, "steps a subgoal is held at most before the teacher is asked again")
    subgoal_reward: float = _field(0.0, "shaped reward for reaching the teacher's subgoal (off by default)")
    subgoal_progress: float = _field(0.0, "shaped reward per step of the view's grid the student comes nearer the "
                                     "teacher's object subgoal than before in the episode (off by default)")
    verb_judged: str = _field("at-success", "never (the mission's verb stays the teacher's reading) | at-success (each "
                              "success judges the verb cloze by the act that completed the mission)")
    verb_success_floor: float = _field(0.1, "judge the verb (verb_judged at-success) and, on levels with locked doors, "
                                       "the next step only while at least this share of the student's last 100 "
                                       "training episodes succeeded (0: always)")
    start: float = _field(1.0, "lambda of the CE(teacher||student) term at frame 0", key="guidance_start")
    end: float = _field(1.0, "lambda after guidance_decay_frames (default: constant; trust gates the pull)",
                        key="guidance_end")
    decay_frames: int = _field(100_000, "frames over which lambda moves linearly from start to end",
                               key="guidance_decay_frames")
    advice_prob: float = _field(0.5, "probability that the student is shown the advice at a step")
    advice_weight: float = _field(1.0, "the shown advice adds weight * lambda * trust * log(advice) to the student's logits")
    trust_rate: float = _field(0.3, "decay per rollout of the trust evidence (exponential averaging rate)")
    trust_sharpness: float = _field(8.0, "trust = max(0, tanh(sharpness * (gain - margin)))")
    trust_spread: float = _field(0.1, "prior spread of per-situation gains (shrinkage towards the overall gain)")
    trust_confidence: float = _field(2.0, "the overall gain must clear this many standard errors before advice pulls")

    def validate(self) -> None:
        if self.advice not in ADVICE_KINDS:
            raise MutualRLError(f"unknown advice {self.advice!r}; allowed: {', '.join(ADVICE_KINDS)}")
        if self.verb_judged not in VERB_JUDGEMENTS:
            raise MutualRLError(f"unknown verb_judged {self.verb_judged!r}; allowed: {', '.join(VERB_JUDGEMENTS)}")
        _check(self, positive=("trust_rate", "subgoal_steps"),
               non_negative=("start", "end", "decay_frames", "advice_weight", "trust_sharpness", "trust_spread",
                             "trust_confidence", "budget", "subgoal_reward", "subgoal_progress"),
               unit=("advice_prob", "trust_rate", "verb_success_floor"))

    def lambda_at(self, frames: int) -> float:
        """Linear schedule of the guidance weight from `start` to `end`."""
        if self.decay_frames == 0:
            return self.end
        progress = min(1.0, frames / self.decay_frames)
        return self.start + progress * (self.end - self.start)


@dataclass
class TeacherConfig:
    """The teacher, and how it learns from the student's feedback (student -> teacher)."""

    name: str = _field("smollm2", "smollm2 | bot | tiny | hf:PATH | endpoint:URL[#MODEL]", key="teacher")
    start_from: str = _field("", "run directory whose learnt teacher (adapter, memory) this run starts from",
                             key="teacher_from")
    feedback_signal: str = _field("advantage", "what the teacher learns from: advantage (GAE) | td_error (one-step)")
    update_every: int = _field(2, "iterations between teacher updates (K)", key="teacher_update_every")
    update_steps: int = _field(4, "gradient steps per teacher update", key="teacher_update_steps")
    batch_size: int = _field(32, "prompts per teacher gradient step", key="teacher_batch")
    lr: float = _field(2e-3, "learning rate of the teacher's LoRA adapter", key="teacher_lr")
    kl_coef: float = _field(0.5, "weight of KL(teacher || original model) in the teacher update: how firmly "
                            "feedback is held to the untaught model's reading", key="teacher_kl")
    hold: str = _field("fixed", "where the KL holds: fixed (every prompt alike) | sureness (each prompt weighed by "
                       "how sure the untaught model's answer is: a near-certain answer held, a coin toss free to "
                       "move)", key="teacher_hold")
    precision: str = _field("auto", "the frozen language model's weights: auto (bfloat16 where the device computes "
                            "it natively: a CPU with AVX-512 BF16 or AMX, a GPU that supports it; else float32) | "
                            "float32 | bfloat16 (the adapter learns in float32 either way)", key="teacher_precision")
    lora_rank: int = _field(16, "LoRA rank of the teacher adapter")
    lora_layers: int = _field(1, "adapt only the top N transformer layers")
    endpoint_timeout: float = _field(120.0, "endpoint teacher: seconds without an answer after which the server "
                                     "counts as down (shorter timeouts are set from its measured latency)")
    endpoint_in_flight: int = _field(4, "endpoint teacher: requests in flight at most (fewer where its latency "
                                     "would make them wait past the timeout)")
    endpoint_retries: int = _field(2, "endpoint teacher: retries of a lost connection or busy answer before the "
                                   "server counts as down")
    endpoint_cooldown: float = _field(30.0, "endpoint teacher: seconds without advice after the server went down, "
                                      "before it is tried again")

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise MutualRLError(f"unknown teacher_precision {self.precision!r}; allowed: {', '.join(PRECISIONS)}")
        if self.hold not in HOLDS:
            raise MutualRLError(f"unknown teacher_hold {self.hold!r}; allowed: {', '.join(HOLDS)}")
        if self.feedback_signal not in FEEDBACK_SIGNALS:
            raise MutualRLError(f"unknown feedback_signal {self.feedback_signal!r}; allowed: {', '.join(FEEDBACK_SIGNALS)}")
        _check(self, positive=("update_every", "update_steps", "batch_size", "lr", "lora_rank", "lora_layers",
                               "endpoint_timeout", "endpoint_in_flight"),
               non_negative=("kl_coef", "endpoint_retries", "endpoint_cooldown"))


@dataclass
class EvalConfig:
    """Held-out evaluation of the student alone and of the teacher alone."""

    every: int = _field(20, "iterations between held-out evaluations of the student and teacher alone (M); 0 = never",
                        key="eval_every")
    episodes: int = _field(20, "episodes per held-out evaluation", key="eval_episodes")
    teacher_every: int = _field(1, "the teacher alone is evaluated at every Nth held-out evaluation; 0 = only before "
                                "and after the run", key="teacher_eval_every")
    target: float = _field(0.0, "stop once the student alone reaches this held-out success at an evaluation; "
                           "0 = train to the frame budget", key="target_success")
    training_target: float = _field(0.0, "stop once the rolling success of the last 100 training episodes reaches "
                                    "this (BabyAI's criterion is 0.99); with target_success, once both are reached; "
                                    "0 = no such target", key="target_training_success")

    def validate(self) -> None:
        _check(self, positive=("episodes",), non_negative=("every", "teacher_every"), unit=("target", "training_target"))
        if self.target > 0 and not self.every:
            raise MutualRLError(f"target_success={self.target} needs held-out evaluations: set eval_every > 0")


SECTIONS = {"ppo": PPOConfig, "guidance": GuidanceConfig, "teacher": TeacherConfig, "evaluation": EvalConfig}


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults learn GoToRedBallNoDists quickly."""

    env_id: str = _field("BabyAI-GoToRedBallNoDists-v0", "MiniGrid/BabyAI environment id")
    mode: str = _field("rl", "rl | guided (teacher->student) | feedback (student->teacher) | mutual (both)")
    frames: int = _field(300_000, "environment frames to train for")
    seed: int = _field(0, "seed of environments, networks and sampling")
    num_envs: int = _field(16, "parallel environment copies")
    device: str = _field("cpu", "cpu | cuda")
    deterministic: bool = _field(True, "torch's deterministic kernels, so that a seed and a thread count give the same "
                                 "run (several CPU threads otherwise add a teacher's gradients in varying order)")
    action_space: str = _field("task", "task (only the actions the level needs) | full (all seven MiniGrid actions)")
    checkpoint_every: int = _field(5, "iterations between checkpoints")
    student_from: str = _field("", "run directory whose student's weights this run starts from (same action space, "
                               "advice kind and student)")
    student: str = _field("film", "the student's network: film (GRU over the mission, FiLM-conditioned "
                          "convolutions over the view) | mlp (bag of words, MLP over the view)")
    student_memory: int = _field(64, "size of the student's LSTM memory of the episode so far; 0 = none (a "
                                 "feed-forward student)")
    action_mask: str = _field("none", "none (every act of the action space, as BabyAI's agents) | no-ops: the student "
                              "never takes an act its view shows would change nothing (forward into a wall or a closed "
                              "door, pick up with nothing in front or full hands, drop where something lies, toggle "
                              "what does not open)")
    ppo: PPOConfig = field(default_factory=PPOConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    @property
    def frames_per_iteration(self) -> int:
        return self.num_envs * self.ppo.num_steps

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
        for name, allowed in (("mode", MODES), ("device", DEVICES), ("action_space", ACTION_SPACES),
                              ("student", STUDENT_ARCHITECTURES), ("action_mask", ACTION_MASKS)):
            if getattr(self, name) not in allowed:
                raise MutualRLError(f"unknown {name} {getattr(self, name)!r}; allowed: {', '.join(allowed)}")
        _check(self, positive=("frames", "num_envs", "checkpoint_every"), non_negative=("seed", "student_memory"))
        for section in SECTIONS:
            getattr(self, section).validate()
        if self.teacher.start_from and not self.uses_teacher:
            raise MutualRLError(f"teacher_from={self.teacher.start_from!r} needs a mode with a teacher, not {self.mode!r}")
        if self.student_memory and self.ppo.minibatches > self.num_envs:
            raise MutualRLError(f"minibatches={self.ppo.minibatches} exceeds num_envs={self.num_envs}: a student with "
                                "memory learns from whole sequences, one or more copies per minibatch (lower "
                                "minibatches, or set student_memory: 0)")
        if self.ppo.minibatches > self.frames_per_iteration:
            raise MutualRLError(
                f"minibatches={self.ppo.minibatches} exceeds the {self.frames_per_iteration} frames of one iteration"
            )
        return self

    # ------------------------------------------------------------- flat view

    def get(self, key: str) -> Any:
        """A field by its flat name (`teacher_lr`), as flags and flat YAML name it."""
        owner, name = _FLAT[key]
        return getattr(self if owner is None else getattr(self, owner), name)

    def set(self, key: str, value: Any) -> None:
        if key not in _FLAT:
            raise MutualRLError(f"unknown config key {key!r}; allowed: {', '.join(FLAT_KEYS)}")
        owner, name = _FLAT[key]
        setattr(self if owner is None else getattr(self, owner), name, value)

    def replace(self, **values: Any) -> "TrainConfig":
        """A copy with fields changed by their flat names: `config.replace(mode="mutual", teacher_lr=1e-3)`."""
        config = copy.deepcopy(self)
        for key, value in values.items():
            config.set(key, value)
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """From nested sections (`teacher: {lr: ...}`) or flat keys (`teacher_lr: ...`), or a mix."""
        config = cls()
        for key, value in flat_items(values):
            config.set(key, value)
        return config

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(read_yaml_mapping(path, "config file"))


def flat_items(values: dict[str, Any]) -> list[tuple[str, Any]]:
    """The fields a mapping of nested sections or flat keys names, by flat name, typed; one line
    naming an unknown key or section and what is allowed."""
    items = []
    for key, value in values.items():
        if key in SECTIONS and (isinstance(value, dict) or key not in _FLAT):
            if not isinstance(value, dict):
                raise MutualRLError(f"config section {key!r} must hold a mapping, got {value!r}")
            names = {f.name: _flat_key(f) for f in fields(SECTIONS[key])}
            for name, inner in value.items():
                if name not in names:
                    raise MutualRLError(f"unknown key {name!r} in config section {key!r}; allowed: {', '.join(names)}")
                items.append((names[name], _typed(names[name], inner)))
        elif key in _FLAT:
            items.append((key, _typed(key, value)))
        else:
            raise MutualRLError(f"unknown config key {key!r}; allowed: {', '.join(FLAT_KEYS)} "
                                f"(or sections {', '.join(SECTIONS)})")
    return items


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping a YAML file holds; one line naming `what` and the path if it cannot."""
    path = Path(path)
    if not path.is_file():
        raise MutualRLError(f"{what} {str(path)!r} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise MutualRLError(f"{what} {str(path)!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise MutualRLError(f"{what} {str(path)!r} must hold a mapping of keys to values")
    return values


def _flat_key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def _flat_fields() -> dict[str, tuple[str | None, dataclasses.Field]]:
    """Flat name -> (section or None, field), for every leaf field of `TrainConfig`."""
    out: dict[str, tuple[str | None, dataclasses.Field]] = {}
    for f in fields(TrainConfig):
        if f.name in SECTIONS:
            for inner in fields(SECTIONS[f.name]):
                out[_flat_key(inner)] = (f.name, inner)
        else:
            out[f.name] = (None, f)
    return out


#: flat name -> (section, field): what flags and flat YAML keys address
FLAT_FIELDS = _flat_fields()
FLAT_KEYS = tuple(FLAT_FIELDS)
_FLAT = {key: (owner, f.name) for key, (owner, f) in FLAT_FIELDS.items()}


def _typed(key: str, value: Any) -> Any:
    kind = type(FLAT_FIELDS[key][1].default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    try:
        if kind in (int, float) and isinstance(value, str):
            return kind(value)
        if kind is str and isinstance(value, (int, float)):
            return str(value)
    except ValueError:
        pass
    raise MutualRLError(f"config key {key}={value!r} must be of type {kind.__name__}")


def _check(section: Any, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = (),
           unit: tuple[str, ...] = ()) -> None:
    """Range checks with a message naming the flat key and the bad value."""
    keys = {f.name: _flat_key(f) for f in fields(section)}
    for name in positive:
        if getattr(section, name) <= 0:
            raise MutualRLError(f"{keys[name]} must be > 0, got {getattr(section, name)}")
    for name in non_negative:
        if getattr(section, name) < 0:
            raise MutualRLError(f"{keys[name]} must be >= 0, got {getattr(section, name)}")
    for name in unit:
        if not 0 <= getattr(section, name) <= 1:
            raise MutualRLError(f"{keys[name]} must be in [0, 1], got {getattr(section, name)}")

"""A curriculum: levels of rising difficulty that one teacher climbs with its students.

A curriculum file is a training config plus `stages:`, each `{env_id, frames, target}`. Every arm
x seed is a chain of ordinary run directories, `out/ARM_seedN/stageK_LEVEL`. A stage starts from
the previous stage's run, carrying the student's weights and/or the teacher (its adapter, or an
endpoint teacher's memory) as the arm says, and ends when the student alone reaches the stage's
target at a held-out evaluation (`target_success`) or its frame budget is spent. The "before"
evaluation of each stage is the carried teacher on the new level, before it has seen it.

Running the same command again resumes: a finished stage is kept, an interrupted one resumes from
its checkpoint, and the next one starts from the last that finished.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from mutualrl.config import FLAT_FIELDS, FLAT_KEYS, TrainConfig, read_yaml_mapping
from mutualrl.errors import MutualRLError
from mutualrl.grid import GridTask, Placement, run_grid, train_run
from mutualrl.report import build_curriculum_report
from mutualrl.tracking import CURRICULUM_FILE, RunDir, seeded_name, stage_label


@dataclass(frozen=True)
class Arm:
    """How one arm trains each stage and what it carries to the next."""

    mode: str
    carry_student: bool
    carry_teacher: bool
    settings: tuple[tuple[str, Any], ...] = ()  # flat config keys this arm sets whatever the curriculum says


#: what the bot's arms set: its subgoals, read from the live state at every step (so no read budget)
_BOT = (("teacher", "bot"), ("teacher_budget", 0))
ARMS = {
    "rl": Arm("rl", carry_student=False, carry_teacher=False),  # a new student each stage, no teacher
    "rl-carry": Arm("rl", carry_student=True, carry_teacher=False),  # the baseline for carried weights
    "mutual": Arm("mutual", carry_student=False, carry_teacher=True),  # the teacher carried, a new student
    "mutual-carry": Arm("mutual", carry_student=True, carry_teacher=True),
    "bot": Arm("guided", carry_student=False, carry_teacher=False, settings=_BOT),  # the upper bound
    # ... climbing with one student: on BlockedUnlockPickup only a student carried from UnlockPickup learnt
    "bot-carry": Arm("guided", carry_student=True, carry_teacher=False, settings=_BOT),
}


@dataclass(frozen=True)
class Stage:
    env_id: str
    frames: int
    target: float

    def label(self, index: int) -> str:
        return stage_label(index, self.env_id)


DEFAULT_STAGES = (
    Stage("BabyAI-GoToRedBallNoDists-v0", 100_000, 0.9),
    Stage("BabyAI-GoToRedBall-v0", 300_000, 0.9),
    Stage("BabyAI-GoToLocal-v0", 500_000, 0.9),
    Stage("BabyAI-PickupLoc-v0", 500_000, 0.9),
    Stage("BabyAI-PutNextLocal-v0", 500_000, 0.9),
)
#: keys a curriculum sets per stage or per arm, so a file may not set them
PER_STAGE_KEYS = ("env_id", "frames", "target_success", "mode", "seed", "student_from", "teacher_from")
#: what every stage runs with
FIXED = {"action_space": "full", "advice": "subgoal"}


@dataclass
class Curriculum:
    """The shared training settings and the stages. Every stage has all seven actions and subgoal
    advice, so that a student's weights fit every level."""

    base: TrainConfig
    stages: tuple[Stage, ...] = DEFAULT_STAGES

    def __post_init__(self) -> None:
        self.base = self.base.replace(**FIXED)
        if not self.stages:
            raise MutualRLError("a curriculum needs at least one stage")
        for i, stage in enumerate(self.stages):  # each stage's settings, checked before any work
            try:
                self.stage_config(ARMS["rl"], 0, i, None)
            except MutualRLError as err:
                raise MutualRLError(f"stage {i} ({stage.env_id}): {err}") from None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Curriculum":
        values = dict(values)
        stages = values.pop("stages", None)
        base, default = TrainConfig.from_dict(values), TrainConfig()
        for key in PER_STAGE_KEYS:
            if base.get(key) != default.get(key):
                raise MutualRLError(f"curriculum key {key!r} is set by each stage or arm; remove it "
                                    "(a stage is {env_id: ..., frames: ..., target: ...})")
        for key, required in FIXED.items():
            section, field = FLAT_FIELDS[key]
            nested = values.get(section) if section else None
            for given in (values.get(key), nested.get(field.name) if isinstance(nested, dict) else None):
                if given not in (None, required):
                    raise MutualRLError(f"curriculum key {key}={given!r}: a curriculum runs with {key}: {required} "
                                        "on every stage, so that a student's weights fit every level")
        return cls(base, DEFAULT_STAGES if stages is None else _stages(stages))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Curriculum":
        return cls.from_dict(read_yaml_mapping(path, "curriculum file"))

    def to_dict(self) -> dict[str, Any]:
        """Flat settings (those a stage or arm sets left out) and the stages: what `from_dict` reads."""
        settings = {key: self.base.get(key) for key in FLAT_KEYS if key not in PER_STAGE_KEYS}
        return {**settings, "stages": [asdict(stage) for stage in self.stages]}

    def stage_config(self, arm: Arm, seed: int, index: int, previous: Path | None) -> TrainConfig:
        """The run config of stage `index` for `arm`, starting from the run in `previous`."""
        stage = self.stages[index]
        config = self.base.replace(env_id=stage.env_id, frames=stage.frames, target_success=stage.target,
                                   mode=arm.mode, seed=seed)
        for key, value in arm.settings:
            config.set(key, value)
        if previous is not None and arm.carry_student:
            config.student_from = str(previous)
        if previous is not None and arm.carry_teacher:
            config.teacher.start_from = str(previous)
        return config.validate()


def _stages(raw: Any) -> tuple[Stage, ...]:
    if not isinstance(raw, list) or not raw:
        raise MutualRLError(f"stages must be a non-empty list of {{env_id, frames, target}}, got {raw!r}")
    stages = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"env_id", "frames", "target"}:
            raise MutualRLError(f"stage {i} must hold exactly env_id, frames and target, got {item!r}")
        frames, target = item["frames"], item["target"]
        if isinstance(frames, bool) or not isinstance(frames, int) or frames <= 0:
            raise MutualRLError(f"stage {i} frames must be an integer > 0, got {frames!r}")
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target <= 1:
            raise MutualRLError(f"stage {i} target must be a success rate in (0, 1], got {target!r}")
        stages.append(Stage(str(item["env_id"]), frames, float(target)))
    return tuple(stages)


def parse_arms(text: str) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    for arm in arms:
        if arm not in ARMS:
            raise MutualRLError(f"unknown arm {arm!r}; allowed: {', '.join(ARMS)}")
    if not arms:
        raise MutualRLError(f"--arms names no arm; allowed: {', '.join(ARMS)}")
    return arms


def stage_dirs(out: Path, arm: str, seed: int, curriculum: Curriculum) -> list[Path]:
    return [out / seeded_name(arm, seed) / stage.label(i) for i, stage in enumerate(curriculum.stages)]


def run_chain(curriculum: dict[str, Any], arm: str, seed: int, out: str, quiet: bool = False) -> None:
    """Train one arm x seed through every stage, each from the last (finished stages are kept).
    Takes plain values, so that it runs in a Ray worker too."""
    plan = Curriculum.from_dict(curriculum)
    previous = None
    for index, directory in enumerate(stage_dirs(Path(out), arm, seed, plan)):
        train_run(directory, plan.stage_config(ARMS[arm], seed, index, previous).to_dict(), quiet=quiet)
        previous = directory


def zero_shot(curriculum: dict[str, Any], seed: int, out: str, quiet: bool = False) -> None:
    """The untaught teacher on every level, alone and its subgoal accuracy (the yardstick of
    transfer); levels already measured are kept."""
    from mutualrl.envs import task_actions
    from mutualrl.evaluation import evaluate_subgoals
    from mutualrl.teachers import make_teacher

    plan = Curriculum.from_dict(curriculum)
    path = Path(out) / "zero_shot" / f"seed{seed}.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    todo = [(i, s) for i, s in enumerate(plan.stages) if s.label(i) not in done]
    if not todo:
        return
    cfg = plan.base
    teacher = make_teacher(cfg.teacher.name, config=cfg.teacher, device=cfg.device, seed=seed)
    for index, stage in todo:
        result = evaluate_subgoals(teacher, stage.env_id, cfg.evaluation.episodes, seed, task_actions(stage.env_id, "full"))
        done[stage.label(index)] = result.to_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(done, indent=2))


def curriculum_grid(curriculum: Curriculum, arms: list[str], seeds: int, out: Path) -> list[GridTask]:
    """The zero-shot teacher of each seed (where an arm carries a teacher), then one chain per arm x
    seed, the arms with a teacher first."""
    plan, out = curriculum.to_dict(), out.resolve()
    tasks = [GridTask(seeded_name("zero_shot", seed), zero_shot, (plan, seed, str(out))) for seed in range(seeds)
             if any(ARMS[arm].carry_teacher for arm in arms)]
    for arm in sorted(arms, key=lambda a: ARMS[a].mode != "mutual"):
        for seed in range(seeds):
            runs = tuple((d, s.frames) for d, s in zip(stage_dirs(out, arm, seed, curriculum), curriculum.stages))
            tasks.append(GridTask(seeded_name(arm, seed), run_chain, (plan, arm, seed, str(out)), runs))
    return tasks


def run_curriculum(curriculum: Curriculum, arms: list[str], seeds: int, out: Path, quiet: bool = False, *,
                   workers: int = 1, threads: int | None = None, ray_address: str | None = None,
                   gpus_per_run: float = 0.0) -> Path:
    """Every arm x seed through the curriculum under `out`, then `out/report.md`. Each chain is one
    task of the grid runner: in turn in this process, or `workers` at once on Ray (or a cluster
    at `ray_address`)."""
    placement = Placement(workers, threads, ray_address, gpus_per_run).for_device(curriculum.base.device)
    out = Path(out)
    RunDir(out).create()
    saved = out / CURRICULUM_FILE
    if saved.is_file() and Curriculum.from_yaml(saved).to_dict() != curriculum.to_dict():
        raise MutualRLError(f"{str(out)!r} holds another curriculum ({CURRICULUM_FILE}); use another --out")
    saved.write_text(yaml.safe_dump(curriculum.to_dict(), sort_keys=False))
    run_grid(curriculum_grid(curriculum, arms, seeds, out), out, placement, quiet=quiet)
    return build_curriculum_report(out)

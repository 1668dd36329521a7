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
from rich.console import Console

from mutualrl.config import FLAT_FIELDS, FLAT_KEYS, TrainConfig, read_yaml_mapping
from mutualrl.errors import MutualRLError


@dataclass(frozen=True)
class Arm:
    """How one arm trains each stage and what it carries to the next."""

    mode: str
    carry_student: bool
    carry_teacher: bool
    settings: tuple[tuple[str, Any], ...] = ()  # flat config keys this arm sets whatever the curriculum says


ARMS = {
    "rl": Arm("rl", carry_student=False, carry_teacher=False),  # a new student each stage, no teacher
    "rl-carry": Arm("rl", carry_student=True, carry_teacher=False),  # the baseline for carried weights
    "mutual": Arm("mutual", carry_student=False, carry_teacher=True),  # the teacher carried, a new student
    "mutual-carry": Arm("mutual", carry_student=True, carry_teacher=True),
    # the upper bound: the bot's subgoals, read from the live state at every step (so no read budget)
    "bot": Arm("guided", carry_student=False, carry_teacher=False, settings=(("teacher", "bot"), ("teacher_budget", 0))),
}


@dataclass(frozen=True)
class Stage:
    env_id: str
    frames: int
    target: float

    def label(self, index: int) -> str:
        level = self.env_id.removeprefix("BabyAI-").removeprefix("MiniGrid-").removesuffix("-v0")
        return f"stage{index}_{level}"


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
#: the curriculum as run, kept in its directory so that the report and a resume read the same one
SAVED_AS = "curriculum.yaml"


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
    return [out / f"{arm}_seed{seed}" / stage.label(i) for i, stage in enumerate(curriculum.stages)]


def run_chain(curriculum: Curriculum, arm: str, seed: int, out: Path, quiet: bool = False) -> None:
    """Train one arm x seed through every stage, each from the last (finished stages are kept)."""
    from mutualrl.compare import train_run

    previous = None
    for index, directory in enumerate(stage_dirs(out, arm, seed, curriculum)):
        train_run(directory, curriculum.stage_config(ARMS[arm], seed, index, previous), quiet=quiet)
        previous = directory


def zero_shot(curriculum: Curriculum, seed: int, out: Path) -> None:
    """The untaught teacher on every level, alone and its subgoal accuracy (the yardstick of
    transfer); levels already measured are kept."""
    from mutualrl.envs import task_actions
    from mutualrl.evaluation import evaluate_subgoals
    from mutualrl.teachers import make_teacher

    path = out / "zero_shot" / f"seed{seed}.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    todo = [(i, s) for i, s in enumerate(curriculum.stages) if s.label(i) not in done]
    if not todo:
        return
    cfg = curriculum.base
    teacher = make_teacher(cfg.teacher.name, config=cfg.teacher, device=cfg.device, seed=seed)
    for index, stage in todo:
        result = evaluate_subgoals(teacher, stage.env_id, cfg.evaluation.episodes, seed, task_actions(stage.env_id, "full"))
        done[stage.label(index)] = result.to_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(done, indent=2))


def run_curriculum(curriculum: Curriculum, arms: list[str], seeds: int, out: Path, quiet: bool = False,
                   workers: int = 1) -> Path:
    """Every arm x seed through the curriculum under `out`, then `out/report.md`. With `workers > 1`,
    that many chains train at once, each in its own process with one torch thread."""
    from mutualrl.report import FAILURES, build_curriculum_report, read_failures
    from mutualrl.tracking import RunDir

    if workers < 1:
        raise MutualRLError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    RunDir(out).create()
    saved = out / SAVED_AS
    if saved.is_file() and Curriculum.from_yaml(saved).to_dict() != curriculum.to_dict():
        raise MutualRLError(f"{str(out)!r} holds another curriculum ({SAVED_AS}); use another --out")
    saved.write_text(yaml.safe_dump(curriculum.to_dict(), sort_keys=False))
    jobs = [("zero_shot", seed) for seed in range(seeds) if any(ARMS[arm].carry_teacher for arm in arms)]
    jobs += [(arm, seed) for arm in sorted(arms, key=lambda a: ARMS[a].mode != "mutual") for seed in range(seeds)]
    console = Console(stderr=True, quiet=quiet)
    failures: dict[str, str] = {}
    if workers == 1:
        for job in jobs:
            console.print(f"[bold]{job[0]}[/] seed {job[1]}")
            failures.update(_run_job(curriculum.to_dict(), *job, out, quiet=quiet))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        console.print(f"{len(jobs)} jobs on {workers} workers; each trains quietly and is listed when it ends")
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            pending = {pool.submit(_run_job, curriculum.to_dict(), *job, out, True, 1): job for job in jobs}
            for done, future in enumerate(as_completed(pending), 1):
                failures.update(future.result())
                console.print(f"[{done}/{len(jobs)}] {pending[future][0]} seed {pending[future][1]} ended")
    ran = {f"{name}_seed{seed}" for name, seed in jobs}  # failures of jobs not run this time still stand
    earlier = read_failures(out)
    (out / FAILURES).write_text(json.dumps({**{k: v for k, v in earlier.items() if k not in ran}, **failures}, indent=2))
    return build_curriculum_report(out)


def _run_job(curriculum: dict[str, Any], name: str, seed: int, out: Path, quiet: bool,
             threads: int | None = None) -> dict[str, str]:
    """One arm x seed chain, or the zero-shot teacher (`name` "zero_shot") of one seed; returns
    {job: error} if it failed twice. Takes plain values so that it runs in a worker process too."""
    from mutualrl.compare import with_retry

    if threads is not None:
        import torch

        from mutualrl import output

        torch.set_num_threads(threads)
        output.configure()
    plan = Curriculum.from_dict(curriculum)
    failures: dict[str, str] = {}
    if name == "zero_shot":
        with_retry(f"zero_shot_seed{seed}", lambda: zero_shot(plan, seed, out), failures)
    else:
        with_retry(f"{name}_seed{seed}", lambda: run_chain(plan, name, seed, out, quiet), failures)
    return failures

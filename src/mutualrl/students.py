"""The students by name: built new (`make_student`), or read back from a run's checkpoint in the
architecture, memory, action space and mask it records, whatever today's defaults (`load_student`);
and an optimizer's state fitted to inputs that grew."""

from __future__ import annotations

from pathlib import Path

import torch

from mutualrl.config import TrainConfig
from mutualrl.envs import FULL_ACTIONS
from mutualrl.errors import MutualRLError
from mutualrl.film import FiLMActorCritic
from mutualrl.student import ActorCritic, Student, grow_to
from mutualrl.tracking import RunDir


#: the student architectures by the name the `student` config field gives
STUDENTS: dict[str, type[Student]] = {"mlp": ActorCritic, "film": FiLMActorCritic}


def make_student(architecture: str, num_actions: int, advice: str, memory: int = 0, mask: str = "none") -> Student:
    student = STUDENTS[architecture](num_actions, advice=advice, memory=memory)
    student.action_mask = mask
    return student


def load_student(run_dir: str | Path) -> tuple[TrainConfig, Student]:
    """The config and trained student of a saved run (its newest checkpoint), in the architecture
    the checkpoint records (checkpoints from before there was a choice hold the MLP student)."""
    run = RunDir(run_dir).require()
    state = run.load_checkpoint()
    config = recorded_config(state)
    model = make_student(config.student, len(recorded_actions(state)), config.guidance.advice, config.student_memory,
                         config.action_mask)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as err:
        raise MutualRLError(f"checkpoint in {str(run.checkpoint_dir)!r} does not hold a {config.student!r} student "
                            f"with memory {config.student_memory} ({type(err).__name__})") from None
    return config, model


def recorded_config(checkpoint: dict) -> TrainConfig:
    """The config a checkpoint's run trained with, its student as the checkpoint records it."""
    config = TrainConfig.from_dict(checkpoint["config"])
    config.student, config.student_memory = recorded_student(checkpoint)
    config.action_mask = recorded_mask(checkpoint)
    return config


def recorded_student(checkpoint: dict) -> tuple[str, int]:
    """The architecture and memory size a checkpoint's student was built with, whatever today's
    defaults (checkpoints from before there was a choice hold the MLP student without memory)."""
    return checkpoint.get("student_architecture", "mlp"), checkpoint.get("student_memory", 0)


def recorded_mask(checkpoint: dict) -> str:
    """The action mask a checkpoint's student acted under (none before there was one)."""
    return checkpoint.get("student_action_mask", "none")


def grow_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Fit a loaded optimizer's per-parameter state (Adam's moments) to parameters that grew."""
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.dim():
                state[key] = grow_to(value, param)


def recorded_actions(checkpoint: dict) -> tuple[str, ...]:
    """The text actions a checkpoint's student acts in: every action space is a prefix of
    `FULL_ACTIONS`, so its policy's size names it, whatever today's level reading gives."""
    return FULL_ACTIONS[: checkpoint["model"]["actor.weight"].shape[0]]

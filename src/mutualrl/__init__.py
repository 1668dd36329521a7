"""mutualrl: an LLM teacher and an RL student that improve each other through feedback.

    from mutualrl import Trainer, TrainConfig
    config = TrainConfig(mode="guided", frames=20_000).replace(teacher="bot")
    summary = Trainer(config, "runs/example").train()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public API, imported on first use so that `mutualrl --help` does not load PyTorch.
_API = {
    "Trainer": "mutualrl.loop",
    "TrainConfig": "mutualrl.config",
    "PPOConfig": "mutualrl.config",
    "GuidanceConfig": "mutualrl.config",
    "TeacherConfig": "mutualrl.config",
    "EvalConfig": "mutualrl.config",
    "make_teacher": "mutualrl.teachers",
    "make_env": "mutualrl.envs",
    "evaluate_student": "mutualrl.evaluation",
    "evaluate_teacher": "mutualrl.evaluation",
    "evaluate_subgoals": "mutualrl.evaluation",
    "run_comparison": "mutualrl.compare",
    "Curriculum": "mutualrl.curriculum",
    "run_curriculum": "mutualrl.curriculum",
}
__all__ = list(_API)

if TYPE_CHECKING:
    from mutualrl.compare import run_comparison
    from mutualrl.config import EvalConfig, GuidanceConfig, PPOConfig, TeacherConfig, TrainConfig
    from mutualrl.curriculum import Curriculum, run_curriculum
    from mutualrl.envs import make_env
    from mutualrl.evaluation import evaluate_student, evaluate_subgoals, evaluate_teacher
    from mutualrl.loop import Trainer
    from mutualrl.teachers import make_teacher


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'mutualrl' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_API[name]), name)

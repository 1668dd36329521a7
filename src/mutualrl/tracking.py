"""Run directory: metrics (JSONL + TensorBoard), config and atomic checkpoints.

Layout of a run directory:
    config.yaml          the run's TrainConfig
    metrics.jsonl        one flat JSON object per iteration
    tb/                  TensorBoard event files, keys grouped as student/, teacher/, time/
    checkpoints/         ckpt_<iteration>.pt, written atomically; the newest two are kept
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import yaml

from mutualrl.config import TrainConfig
from mutualrl.errors import MutualRLError

log = logging.getLogger(__name__)

#: the sections of an iteration's wall time, as `time_<name>` in the metrics
TIMED_SECTIONS = ("env", "teacher", "student", "student_update", "teacher_update", "eval")
TIMERS = tuple(f"time_{name}" for name in TIMED_SECTIONS)
#: the metrics key of the student's held-out success without advice
ALONE = "student_eval_success_rate"
#: finished training episodes the rolling success rate is taken over
SUCCESS_WINDOW = 100
_TEACHER_KEYS = {"lambda", "teacher_calls", "cache_hit_rate", "advice_accuracy", "trust", "advice_shown_rate",
                 "subgoal_accuracy", "advised_fraction", "reads_per_1024_frames", "prompts_per_1024_frames",
                 "subgoals_reached_rate", "subgoals_per_1024_frames", "advice_followed_rate"}
_CHECKPOINT = re.compile(r"ckpt_(\d+)\.pt$")
#: a curriculum's settings and stages, kept in its directory so that a resume and the report read the same
CURRICULUM_FILE = "curriculum.yaml"
#: a grid's tasks that failed twice, {task: error}, written beside its runs and report
FAILURES = "failures.json"


def tensorboard_tag(key: str) -> str:
    """Group a flat metric key the CleanRL way: student/..., teacher/..., time/..."""
    if key.startswith("time_") or key == "fps":
        return f"time/{key}"
    if key in _TEACHER_KEYS or key.startswith("teacher_"):
        return f"teacher/{key}"
    return f"student/{key}"


class RunDir:
    """A training run on disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.metrics_path = self.path / "metrics.jsonl"
        self.config_path = self.path / "config.yaml"
        self.checkpoint_dir = self.path / "checkpoints"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def create(self) -> "RunDir":
        """Make the directory, or fail with one line if it cannot be written (before any work)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write_test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise MutualRLError(f"cannot write the run directory {str(self.path)!r} ({err.strerror or err}); "
                                "choose another --out") from None
        return self

    def require(self) -> "RunDir":
        if not self.path.is_dir():
            raise MutualRLError(f"run directory {str(self.path)!r} does not exist")
        if not self.exists():
            raise MutualRLError(f"{str(self.path)!r} is not a run directory (no config.yaml)")
        return self

    def write_config(self, config: TrainConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(self.config_path, yaml.safe_dump(config.to_dict(), sort_keys=False).encode())

    def read_config(self) -> TrainConfig:
        return TrainConfig.from_yaml(self.require().config_path)

    # ------------------------------------------------------------------ metrics

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: everything after it is lost anyway
        return rows

    def truncate_metrics(self, iteration: int) -> None:
        """Keep only the rows up to `iteration`, so a resumed run neither repeats nor skips rows."""
        rows = [r for r in self.read_metrics() if r["iteration"] <= iteration]
        _atomic_write_bytes(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows).encode())

    # -------------------------------------------------------------- checkpoints

    def checkpoints(self) -> list[Path]:
        found = [p for p in self.checkpoint_dir.glob("ckpt_*.pt") if _CHECKPOINT.search(p.name)]
        return sorted(found, key=lambda p: int(_CHECKPOINT.search(p.name).group(1)))

    def save_checkpoint(self, state: dict[str, Any], iteration: int, keep: int = 2) -> Path:
        """Write atomically (temp file + rename), then drop all but the newest `keep`."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        target = self.checkpoint_dir / f"ckpt_{iteration:07d}.pt"
        tmp = target.with_suffix(".tmp")
        import torch  # here, not at the top: reading a run's metrics and reports needs no torch

        torch.save(state, tmp)
        os.replace(tmp, target)
        for old in self.checkpoints()[:-keep]:
            old.unlink()
        return target

    def load_checkpoint(self) -> dict[str, Any]:
        """The newest readable checkpoint: a damaged newest one falls back to the one before, with
        one warning line; a clear error if there is none or none can be read.

        Checkpoints hold plain values and tensors only, so they load with `weights_only=True`."""
        import torch

        found = self.checkpoints()
        if not found:
            raise MutualRLError(f"no checkpoint in {str(self.checkpoint_dir)!r}")
        for path in reversed(found):
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # torch raises many types for a damaged file
                problem = f"checkpoint {str(path)!r} is corrupt or unreadable ({type(err).__name__})"
                if path == found[0]:
                    raise MutualRLError(problem) from None
                log.warning("%s; falling back to the one before it", problem)
                continue
            return state
        raise AssertionError("unreachable: the oldest checkpoint either loads or raises")

    def teacher_state(self, name: str) -> dict[str, Any]:
        """The learnt state of this run's teacher (adapter or memory), which must be a `name` teacher."""
        state = self.require().load_checkpoint()
        used = TrainConfig.from_dict(state.get("config", {})).teacher.name
        if used != name or state.get("teacher") is None:
            raise MutualRLError(f"run {str(self.path)!r} has no {name!r} teacher to start from (it used {used!r})")
        return state["teacher"]


class MetricsLogger:
    """Appends one JSON row per iteration and mirrors numeric values to TensorBoard."""

    def __init__(self, run: RunDir, purge_step: int | None = None):
        run.path.mkdir(parents=True, exist_ok=True)
        self._file = open(run.metrics_path, "a", buffering=1)
        from torch.utils.tensorboard import SummaryWriter

        self._tb = SummaryWriter(str(run.path / "tb"), purge_step=purge_step)

    def log(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        step = int(row["frames"])
        for key, value in row.items():
            if key not in ("frames", "iteration") and isinstance(value, (int, float)) and value == value:
                self._tb.add_scalar(tensorboard_tag(key), value, step)

    def close(self) -> None:
        self._file.close()
        self._tb.close()


def seeded_name(name: str, seed: int) -> str:
    """A grid member's directory (and task) name: a mode, arm or run kind and its seed, `mutual_seed2`."""
    return f"{name}_seed{seed}"


def parse_seeded_name(text: str) -> tuple[str, int] | None:
    """(name, seed) of a `seeded_name`, or None for any other name."""
    match = re.fullmatch(r"(.+)_seed(\d+)", text)
    return (match.group(1), int(match.group(2))) if match else None


def stage_label(index: int, env_id: str) -> str:
    """The directory name of a curriculum's stage `index` inside each chain: `stage2_GoToLocal`."""
    level = env_id.removeprefix("BabyAI-").removeprefix("MiniGrid-").removesuffix("-v0")
    return f"stage{index}_{level}"


def read_failures(root: Path) -> dict[str, str]:
    """The tasks of the grid under `root` that failed twice, {name: error}; empty if none were recorded."""
    path = Path(root) / FAILURES
    return json.loads(path.read_text()) if path.is_file() else {}


def write_failures(root: Path, failures: dict[str, str]) -> None:
    _atomic_write_bytes(Path(root) / FAILURES, json.dumps(failures, indent=2).encode())


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Timer:
    """Wall-clock seconds per section of one iteration: `with timer("env"): ...`."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(TIMED_SECTIONS, 0.0)

    @contextlib.contextmanager
    def __call__(self, section: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[section] += time.perf_counter() - start

    def move(self, seconds: float, source: str, target: str) -> None:
        """Book time measured inside `source` (e.g. a teacher reading during its update) to `target`."""
        self.seconds[source] -= seconds
        self.seconds[target] += seconds

    def row(self) -> dict[str, float]:
        return {f"time_{name}": value for name, value in self.seconds.items()}


class EpisodeTracker:
    """Rolling statistics of the finished training episodes (the last `SUCCESS_WINDOW`)."""

    def __init__(self, num_envs: int):
        self.success: deque[float] = deque(maxlen=SUCCESS_WINDOW)
        self.returns: deque[float] = deque(maxlen=SUCCESS_WINDOW)
        self.lengths: deque[float] = deque(maxlen=SUCCESS_WINDOW)
        self.finished = 0
        self.running_return = np.zeros(num_envs)
        self.running_length = np.zeros(num_envs, dtype=int)

    def step(self, reward: np.ndarray, done: np.ndarray, success: np.ndarray) -> None:
        self.running_return += reward
        self.running_length += 1
        for i in np.flatnonzero(done):
            self.success.append(float(success[i]))
            self.returns.append(float(self.running_return[i]))
            self.lengths.append(float(self.running_length[i]))
            self.finished += 1
        self.running_return[done] = 0.0
        self.running_length[done] = 0

    def row(self) -> dict[str, float]:
        if not self.success:
            return {"success_rate": 0.0, "mean_return": 0.0, "mean_length": float("nan"), "episodes": 0}
        return {"success_rate": float(np.mean(self.success)), "mean_return": float(np.mean(self.returns)),
                "mean_length": float(np.mean(self.lengths)), "episodes": self.finished}

    def state_dict(self) -> dict[str, Any]:
        return {"window": [list(self.success), list(self.returns), list(self.lengths)], "finished": self.finished}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for buffer, values in zip((self.success, self.returns, self.lengths), state["window"]):
            buffer.extend(values)
        self.finished = state.get("finished", len(self.success))


def frames_to_success(rows: list[dict[str, Any]], threshold: float, key: str = "success_rate") -> int | None:
    """Frames at the first iteration whose `key` reached `threshold`.

    By default the rolling success of the training episodes (the student acting with whatever
    advice it is shown), counted only once a full window of `SUCCESS_WINDOW` episodes has
    finished: the first short episodes are the successful ones. With `key=ALONE`, the held-out
    greedy success of the student without advice, measured every `eval_every` iterations."""
    for row in rows:
        full = key != "success_rate" or row.get("episodes", 0) >= SUCCESS_WINDOW
        if full and row.get(key, 0.0) >= threshold:
            return int(row["frames"])
    return None


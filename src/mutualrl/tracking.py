"""Run directory: metrics (JSONL + TensorBoard), config and atomic checkpoints.

Layout of a run directory:
    config.yaml          the run's TrainConfig
    metrics.jsonl        one flat JSON object per iteration
    tb/                  TensorBoard event files, keys grouped as student/, teacher/, time/
    checkpoints/         ckpt_<iteration>.pt, written atomically; the newest two are kept
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.tensorboard import SummaryWriter

from mutualrl.config import TrainConfig
from mutualrl.errors import MutualRLError

_TEACHER_KEYS = {"lambda", "teacher_calls", "cache_hit_rate", "advice_accuracy", "trust", "advice_shown_rate"}
_CHECKPOINT = re.compile(r"ckpt_(\d+)\.pt$")


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
        torch.save(state, tmp)
        os.replace(tmp, target)
        for old in self.checkpoints()[:-keep]:
            old.unlink()
        return target

    def load_checkpoint(self) -> dict[str, Any]:
        """The newest checkpoint; a clear error if there is none or it cannot be read."""
        found = self.checkpoints()
        if not found:
            raise MutualRLError(f"no checkpoint in {str(self.checkpoint_dir)!r}")
        newest = found[-1]
        try:
            return torch.load(newest, map_location="cpu", weights_only=False)
        except Exception as err:  # torch raises many types for a damaged file
            raise MutualRLError(f"checkpoint {str(newest)!r} is corrupt or unreadable ({type(err).__name__})") from None


class MetricsLogger:
    """Appends one JSON row per iteration and mirrors numeric values to TensorBoard."""

    def __init__(self, run: RunDir, purge_step: int | None = None):
        run.path.mkdir(parents=True, exist_ok=True)
        self._file = open(run.metrics_path, "a", buffering=1)
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


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)

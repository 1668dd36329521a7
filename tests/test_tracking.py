import json
import logging
import signal
import subprocess
import sys
import time

import pytest
import torch

from mutualrl.config import TrainConfig
from mutualrl.errors import MutualRLError
from mutualrl.loop import Trainer
from mutualrl.tracking import RunDir

from machinery import SMALL_STUDENT

SMALL = dict(env_id="BabyAI-GoToRedBallNoDists-v0", num_envs=4, num_steps=32, eval_episodes=4, checkpoint_every=1,
             **SMALL_STUDENT)


def rl(frames: int) -> TrainConfig:
    return TrainConfig().replace(mode="rl", frames=frames, **SMALL)


def test_checkpoint_round_trip(tmp_path):
    trainer = Trainer(rl(256), tmp_path, quiet=True)
    trainer.train()
    restored = Trainer.resume(tmp_path, quiet=True)
    assert restored.iteration == trainer.iteration and restored.frames == trainer.frames
    for a, b in zip(trainer.student.state_dict().values(), restored.student.state_dict().values()):
        assert torch.equal(a, b)
    assert restored.optimizer.state_dict()["state"].keys() == trainer.optimizer.state_dict()["state"].keys()
    assert list(restored.episodes.success) == list(trainer.episodes.success)
    assert restored.episodes.finished == trainer.episodes.finished


def test_resume_continues_without_duplicated_or_lost_iterations(tmp_path):
    Trainer(rl(384), tmp_path, quiet=True).train()
    run = RunDir(tmp_path)
    # a kill after metrics were written but before the next checkpoint: the extra row must go
    with open(run.metrics_path, "a") as f:
        f.write(json.dumps({"iteration": 4, "frames": 512, "success_rate": 0.0}) + "\n")
    resumed = Trainer.resume(tmp_path, frames=640, quiet=True)
    assert resumed.frames == 384
    resumed.train()
    rows = run.read_metrics()
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["frames"] for r in rows] == [128, 256, 384, 512, 640]


def test_resume_after_kill(tmp_path):
    """A real process killed mid-run resumes from its newest checkpoint and finishes the budget."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mutualrl.cli", "train", "--mode", "rl", "--frames", "200000", "--num-envs", "4",
           "--num-steps", "32", "--checkpoint-every", "2", "--eval-episodes", "2", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = RunDir(out)
    deadline = time.time() + 120
    while len(run.read_metrics()) < 7 and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(run.checkpoints()[-1], weights_only=False)["iteration"]
    assert saved >= 2
    target = (saved + 3) * 128
    rc = subprocess.run(cmd[:cmd.index("--frames") + 1] + [str(target)] + cmd[cmd.index("--frames") + 2:] + ["--resume"],
                        capture_output=True, text=True, timeout=300)
    assert rc.returncode == 0, rc.stderr
    rows = run.read_metrics()
    assert [r["iteration"] for r in rows] == list(range(1, saved + 4))
    assert rows[-1]["frames"] == target
    assert not list(run.checkpoint_dir.glob("*.tmp"))


def test_existing_run_is_never_overwritten(tmp_path):
    Trainer(rl(128), tmp_path, quiet=True).train()
    with pytest.raises(MutualRLError, match="already holds a run"):
        Trainer(rl(128), tmp_path, quiet=True)


def test_corrupt_newest_checkpoint_falls_back_to_the_one_before(tmp_path, caplog):
    Trainer(rl(384), tmp_path, quiet=True).train()
    older, newest = RunDir(tmp_path).checkpoints()
    newest.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="mutualrl"):
        resumed = Trainer.resume(tmp_path, frames=512, quiet=True)
    assert resumed.iteration == 2  # from ckpt 2, not 3
    assert [r.message for r in caplog.records if "corrupt" in r.message] == [
        f"checkpoint {str(newest)!r} is corrupt or unreadable (UnpicklingError); falling back to the one before it"]
    resumed.train()
    assert [r["iteration"] for r in RunDir(tmp_path).read_metrics()] == [1, 2, 3, 4]


def test_no_readable_checkpoint_is_a_clear_error(tmp_path):
    Trainer(rl(256), tmp_path, quiet=True).train()
    for path in RunDir(tmp_path).checkpoints():
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(MutualRLError, match="corrupt"):
        Trainer.resume(tmp_path, quiet=True)


def test_unwritable_run_directory_is_a_clear_error_before_any_work():
    with pytest.raises(MutualRLError, match=r"cannot write the run directory '/proc/mutualrl-x'"):
        Trainer(rl(128), "/proc/mutualrl-x", quiet=True)

import json
import subprocess
import sys

import pytest

from mutualrl.config import TrainConfig
from mutualrl.loop import Trainer
from mutualrl.tracking import RunDir


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "mutualrl.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, expected", [
    (["train", "--env", "BabyAI-Nope-v0", "--out", "X"], "unknown environment 'BabyAI-Nope-v0'"),
    (["train", "--mode", "telepathy", "--out", "X"], "unknown mode 'telepathy'; allowed: rl, guided, feedback, mutual"),
    (["train", "--frames", "-5", "--out", "X"], "frames must be > 0, got -5"),
    (["train", "--device", "tpu", "--out", "X"], "unknown device 'tpu'"),
    (["eval", "no/such/run"], "run directory 'no/such/run' does not exist"),
    (["eval", "--teacher", "oracle9"], "unknown teacher 'oracle9'"),
    (["train", "--config", "missing.yaml", "--out", "X"], "config file 'missing.yaml' does not exist"),
])
def test_bad_input_is_one_clear_line(args, expected, tmp_path):
    result = run_cli(*[str(tmp_path / a) if a == "X" else a for a in args])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_corrupt_checkpoint_cli(tmp_path):
    Trainer(TrainConfig(mode="rl", frames=128, num_envs=4, num_steps=32, eval_episodes=2), tmp_path, quiet=True).train()
    RunDir(tmp_path).checkpoints()[-1].write_bytes(b"\x00garbage")
    result = run_cli("eval", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "corrupt" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_train_then_eval_json(tmp_path):
    out = tmp_path / "run"
    train = run_cli("train", "--mode", "rl", "--frames", "2048", "--num-envs", "8", "--num-steps", "32",
                    "--eval-episodes", "4", "--out", str(out), "--quiet")
    assert train.returncode == 0, train.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {"frames", "success_rate", "mean_return", "fps"} <= rows[0].keys()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    result = run_cli("eval", str(out), "--episodes", "6", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["episodes"] == 6 and set(data) >= {"success_rate", "mean_return", "mean_length", "episodes"}
    assert 0.0 <= data["success_rate"] <= 1.0

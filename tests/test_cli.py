import json
import os
import subprocess
import sys

import pytest
import torch

from mutualrl.cli import main
from mutualrl.config import TrainConfig
from mutualrl.loop import Trainer
from mutualrl.tracking import RunDir


def run_cli(*args, timeout=300):
    """The command as a user runs it, in a process of its own (for what the terminal shows)."""
    return subprocess.run([sys.executable, "-m", "mutualrl.cli", *args], capture_output=True, text=True, timeout=timeout)


def cli(capsys, *args) -> subprocess.CompletedProcess:
    """The same command in this process (no start-up of its own): its exit code, stdout and stderr."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


@pytest.mark.parametrize("args, expected", [
    (["train", "--env", "BabyAI-Nope-v0", "--out", "X"], "unknown environment 'BabyAI-Nope-v0'"),
    (["train", "--mode", "telepathy", "--out", "X"], "unknown mode 'telepathy'; allowed: rl, guided, feedback, mutual"),
    (["train", "--frames", "-5", "--out", "X"], "frames must be > 0, got -5"),
    (["train", "--device", "tpu", "--out", "X"], "unknown device 'tpu'"),
    (["eval", "no/such/run"], "run directory 'no/such/run' does not exist"),
    (["eval", "--teacher", "oracle9"], "unknown teacher 'oracle9'"),
    (["train", "--config", "missing.yaml", "--out", "X"], "config file 'missing.yaml' does not exist"),
    (["eval", "--teacher", "tiny", "--action-space", "some"], "unknown action_space 'some'; allowed: task, full"),
    (["eval", "--teacher", "tiny", "--teacher-precision", "fp8"], "unknown teacher_precision 'fp8'; allowed: auto, float32, bfloat16"),
    (["train", "--teacher-precision", "half", "--out", "X"], "unknown teacher_precision 'half'"),
    (["train", "--teacher-hold", "loose", "--out", "X"], "unknown teacher_hold 'loose'; allowed: fixed, sureness"),
    (["train", "--action-mask", "all", "--out", "X"], "unknown action_mask 'all'; allowed: none, no-ops"),
    (["curriculum", "--arms", "rl,nope", "--out", "X"], "unknown arm 'nope'; allowed: rl, rl-carry, mutual"),
    (["curriculum", "--config", "missing.yaml", "--out", "X"], "curriculum file 'missing.yaml' does not exist"),
    (["train", "--target-success", "0.5", "--eval-every", "0", "--out", "X"], "target_success=0.5 needs held-out"),
    (["train", "--threads", "0", "--out", "X"], "--threads must be >= 1, got 0"),
])
def test_bad_input_is_one_clear_line(args, expected, tmp_path, capsys):
    result = cli(capsys, *[str(tmp_path / a) if a == "X" else a for a in args])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_resume_refuses_a_changed_setting_in_one_line_and_goes_on_with_the_same_ones(tmp_path, capsys):
    Trainer(TrainConfig(mode="rl", frames=128, num_envs=4).replace(num_steps=32, eval_episodes=2), tmp_path,
            quiet=True).train()
    changed = cli(capsys, "train", "--out", str(tmp_path), "--resume", "--seed", "3", "--mode", "rl", "--frames", "256")
    assert changed.returncode == 2 and "Traceback" not in changed.stderr
    assert changed.stderr.strip().splitlines() == ["mutualrl: error: --resume goes on with the run's own settings; "
                                                   "--seed 3 (the run's: 0) (only --frames, --device, "
                                                   "--target-success may change)"]
    same = cli(capsys, "train", "--out", str(tmp_path), "--resume", "--seed", "0", "--mode", "rl", "--frames", "256",
               "--quiet")
    assert same.returncode == 0, same.stderr
    assert RunDir(tmp_path).read_metrics()[-1]["frames"] == 256


def test_corrupt_checkpoint_cli(tmp_path):
    Trainer(TrainConfig(mode="rl", frames=128, num_envs=4).replace(num_steps=32, eval_episodes=2), tmp_path,
            quiet=True).train()
    RunDir(tmp_path).checkpoints()[-1].write_bytes(b"\x00garbage")
    result = run_cli("eval", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "corrupt" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_train_then_eval_json(tmp_path, capsys):
    out, threads = tmp_path / "run", torch.get_num_threads()
    wanted = 3 if threads != 3 else 2
    try:
        train = cli(capsys, "train", "--mode", "rl", "--frames", "2048", "--num-envs", "8", "--num-steps", "32",
                    "--eval-episodes", "4", "--out", str(out), "--quiet", "--threads", str(wanted), "--no-deterministic")
        assert torch.get_num_threads() == wanted and not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
    assert "deterministic: false" in (out / "config.yaml").read_text()
    assert train.returncode == 0, train.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {"frames", "success_rate", "mean_return", "fps"} <= rows[0].keys()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    result = cli(capsys, "eval", str(out), "--episodes", "6", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["episodes"] == 6 and set(data) >= {"success_rate", "mean_return", "mean_length", "episodes"}
    assert 0.0 <= data["success_rate"] <= 1.0


def test_compare_keeps_the_config_files_environment(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("env_id: MiniGrid-Empty-5x5-v0\nframes: 128\nnum_envs: 4\nnum_steps: 32\neval_episodes: 2\n")
    result = cli(capsys, "compare", "--config", str(config), "--modes", "rl", "--seeds", "1", "--out", str(tmp_path / "out"),
                     "--quiet")
    assert result.returncode == 0, result.stderr
    assert RunDir(tmp_path / "out" / "rl_seed0").read_config().env_id == "MiniGrid-Empty-5x5-v0"
    result = cli(capsys, "compare", "--config", str(config), "--env", "BabyAI-GoToRedBallNoDists-v0", "--modes", "rl",
                     "--seeds", "1", "--out", str(tmp_path / "flag"), "--quiet")
    assert RunDir(tmp_path / "flag" / "rl_seed0").read_config().env_id == "BabyAI-GoToRedBallNoDists-v0"


def test_eval_of_a_run_reads_device(tmp_path, capsys):
    Trainer(TrainConfig(mode="rl", frames=128, num_envs=4).replace(num_steps=32, eval_episodes=2), tmp_path,
            quiet=True).train()
    result = cli(capsys, "eval", str(tmp_path), "--episodes", "2", "--device", "tpu")
    assert result.returncode == 2 and "unknown device 'tpu'; allowed: cpu, cuda" in result.stderr
    result = cli(capsys, "eval", str(tmp_path), "--episodes", "2", "--device", "cpu", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["episodes"] == 2


def test_unwritable_out_is_one_line():
    result = run_cli("train", "--mode", "rl", "--frames", "128", "--out", "/proc/mutualrl-x")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("mutualrl: error: cannot write the run directory '/proc/mutualrl-x' "
                                     "(No such file or directory); choose another --out")


@pytest.mark.parametrize("verbose", [False, True])
def test_library_chatter_only_with_verbose(tmp_path, verbose):
    """On a level with distractors BabyAI prints rejected layouts: only with --verbose."""
    args = ["train", "--mode", "mutual", "--teacher", "tiny", "--env", "BabyAI-GoToLocal-v0", "--frames", "64",
            "--num-envs", "4", "--num-steps", "16", "--eval-episodes", "2", "--teacher-update-every", "1",
            "--out", str(tmp_path / "run")] + (["--verbose"] if verbose else [])
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    shown = result.stdout + result.stderr
    assert ("Sampling rejected" in shown) == verbose
    assert "Warning" not in shown  # no library warning, whatever the verbosity: none of our calls is deprecated
    assert "before -> after" in result.stdout  # our table is always there, its header naming action advice's accuracy
    assert "accuracy" in result.stdout and "subgoal" not in result.stdout


@pytest.mark.parametrize("verbose", [False, True])
def test_bare_library_progress_bars_only_with_verbose(verbose):
    """transformers converts the embedded teacher's GGUF under a bare tqdm bar, which its own switch
    does not reach: the bar is drawn only when verbose."""
    code = ("import sys; from mutualrl import output; output.configure(verbose=sys.argv[1] == 'y'); "
            "from tqdm.auto import tqdm; list(tqdm(range(3), desc='Converting'))")
    result = subprocess.run([sys.executable, "-c", code, "y" if verbose else "n"], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if not k.startswith("TQDM_")})
    assert result.returncode == 0, result.stderr
    assert ("Converting" in result.stderr) == verbose


def test_eval_judges_the_teacher_a_run_learnt(tmp_path, capsys, monkeypatch):
    config = TrainConfig(mode="feedback", frames=128, num_envs=4, action_space="full").replace(
        num_steps=32, eval_episodes=2, teacher="tiny", advice="subgoal", teacher_update_every=1)
    Trainer(config, tmp_path, quiet=True).train()
    result = cli(capsys, "eval", "--teacher", "tiny", "--teacher-from", str(tmp_path), "--advice", "subgoal",
                     "--action-space", "full", "--episodes", "2", "--json")
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) >= {"success_rate", "subgoal_accuracy"}
    monkeypatch.setenv("MUTUALRL_CACHE", str(tmp_path / "models"))
    wrong = cli(capsys, "eval", "--teacher", "smollm2", "--teacher-from", str(tmp_path))
    assert wrong.returncode == 2 and "has no 'smollm2' teacher to start from (it used 'tiny')" in wrong.stderr
    assert not (tmp_path / "models").exists()  # said before the 135M model was converted or loaded

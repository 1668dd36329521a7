import numpy as np
import pytest
import torch

from mutualrl.config import TrainConfig
from mutualrl.envs import NAVIGATION_ACTIONS, Situation
from mutualrl.errors import MutualRLError
from mutualrl.feedback import build_feedback, td_errors
from mutualrl.loop import Trainer
from mutualrl.ppo import compute_gae
from mutualrl.tracking import RunDir, Timer

BUDGET = dict(env_id="BabyAI-GoToRedBallNoDists-v0", frames=4096, num_envs=8, num_steps=64, eval_episodes=10, eval_every=0)
TINY_MUTUAL = dict(mode="mutual", teacher="tiny", seed=0, frames=1024, num_envs=4, num_steps=32, eval_episodes=2,
                   eval_every=4, teacher_update_every=4, teacher_update_steps=1, teacher_batch=4)


def config(**values) -> TrainConfig:
    return TrainConfig().replace(**values)


def test_guided_by_the_bot_reaches_what_rl_does_not(tmp_path):
    rl = Trainer(config(mode="rl", seed=0, **BUDGET), tmp_path / "rl", quiet=True)
    rl.train()
    guided = Trainer(config(mode="guided", teacher="bot", seed=0, **BUDGET), tmp_path / "guided", quiet=True)
    guided.train()
    rl_best = max(r["success_rate"] for r in rl.run.read_metrics())
    guided_rows = guided.run.read_metrics()
    assert guided_rows[-1]["success_rate"] >= 0.9
    assert rl_best < 0.9
    assert {"lambda", "teacher_version", "time_teacher", "advice_followed_rate"} <= guided_rows[-1].keys()


def test_feedback_mode_needs_a_teacher_that_learns(tmp_path):
    with pytest.raises(MutualRLError, match="needs a teacher that learns"):
        Trainer(config(mode="feedback", teacher="bot", **BUDGET), tmp_path, quiet=True)


def test_mutual_with_tiny_teacher_updates_teacher_and_logs_metrics(tmp_path):
    trainer = Trainer(config(**TINY_MUTUAL, teacher_precision="float32"), tmp_path, quiet=True)  # (compared exactly)
    summary = trainer.train()
    rows = trainer.run.read_metrics()
    assert [r["teacher_version"] for r in rows] == [0, 0, 0, 1, 1, 1, 1, 2]
    for key in ("lambda", "teacher_calls", "cache_hit_rate", "time_env", "time_teacher", "time_student_update",
                "time_teacher_update", "teacher_feedback_prompts"):
        assert key in rows[-1]
    assert rows[3]["time_teacher_update"] >= 0 and rows[3]["time_teacher"] > 0
    assert "teacher_success_rate" in rows[3] and "advice_accuracy" in rows[7]
    assert {"teacher_before", "teacher_after", "student_before", "student_after"} <= summary.keys()
    # the adapter survives a resume: the restored teacher gives the same advice
    resumed = Trainer.resume(tmp_path, frames=1152, quiet=True)
    assert resumed.teacher.version == 2
    sits = [Situation("go to the red ball", "You see no objects. A wall is 3 steps ahead.", NAVIGATION_ACTIONS)]
    assert np.allclose(resumed.teacher.advise(sits)[0].probs, trainer.teacher.advise(sits)[0].probs, atol=1e-5)


def test_checkpoints_hold_plain_values_and_pending_feedback_survives_a_resume(tmp_path):
    """No environment or other live object is pickled: a checkpoint loads with weights_only=True,
    and feedback gathered before the kill reaches the teacher after the resume."""
    values = dict(mode="feedback", teacher="tiny", frames=384, num_envs=4, num_steps=32, eval_every=0,
                  eval_episodes=2, teacher_update_every=4, teacher_update_steps=1, teacher_batch=4, checkpoint_every=1)
    trainer = Trainer(config(**values), tmp_path, quiet=True)
    trainer.train()
    newest = RunDir(tmp_path).checkpoints()[-1]
    state = torch.load(newest, weights_only=True)
    assert state["iteration"] == 3 and len(state["pending_feedback"]) == len(trainer.pending_feedback) > 0
    resumed = Trainer.resume(tmp_path, frames=512, quiet=True)
    assert resumed.pending_feedback.keys() == trainer.pending_feedback.keys()
    record = next(iter(trainer.pending_feedback))
    assert np.array_equal(resumed.pending_feedback[record].counts, trainer.pending_feedback[record].counts)
    resumed.train()
    assert resumed.teacher.version == 1 and resumed.pending_feedback == {}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a GPU run resumed where there is no GPU")
def test_a_run_saved_on_a_gpu_goes_on_on_the_cpu_when_resumed_with_its_device(tmp_path):
    trainer = Trainer(config(mode="rl", frames=256, num_envs=4, num_steps=32, eval_every=0, eval_episodes=2,
                             checkpoint_every=1), tmp_path, quiet=True)
    trainer.train()
    newest = RunDir(tmp_path).checkpoints()[-1]
    state = torch.load(newest, weights_only=True)
    state["config"]["device"] = "cuda"  # what a run on a GPU records
    torch.save(state, newest)
    with pytest.raises(MutualRLError, match="no CUDA GPU is available; use --device cpu"):
        Trainer.resume(tmp_path, quiet=True)
    resumed = Trainer.resume(tmp_path, frames=384, device="cpu", quiet=True)
    assert resumed.train()["frames"] == 384
    assert TrainConfig.from_yaml(tmp_path / "config.yaml").device == "cpu"


def test_a_new_run_starts_from_a_learnt_teacher(tmp_path):
    # (float32: the adopted adapter must read exactly as the learnt one, not within bfloat16's rounding)
    small = dict(teacher="tiny", teacher_precision="float32", num_envs=4, num_steps=32, eval_episodes=2, eval_every=0)
    learnt = Trainer(config(mode="feedback", frames=256, teacher_update_every=2, teacher_update_steps=2,
                            teacher_batch=4, teacher_lr=5e-2, **small), tmp_path / "a", quiet=True)
    learnt.train()
    fresh = Trainer(config(mode="guided", frames=128, **small), tmp_path / "plain", quiet=True)
    adopted = Trainer(config(mode="guided", teacher_from=str(tmp_path / "a"), frames=128, **small), tmp_path / "b",
                      quiet=True)
    sits = [Situation("go to the red ball", "You see no objects. A wall is 3 steps ahead.", NAVIGATION_ACTIONS)]
    assert adopted.teacher.version == learnt.teacher.version == 1
    assert np.allclose(adopted.teacher.advise(sits)[0].probs, learnt.teacher.advise(sits)[0].probs, atol=1e-5)
    assert not np.allclose(fresh.teacher.advise(sits)[0].probs, learnt.teacher.advise(sits)[0].probs, atol=1e-3)
    with pytest.raises(MutualRLError, match="has no 'bot' teacher to start from"):
        Trainer(config(mode="guided", frames=128, **{**small, "teacher": "bot"}, teacher_from=str(tmp_path / "a")),
                tmp_path / "c", quiet=True)
    with pytest.raises(MutualRLError, match="adapter has lora_rank=16, lora_layers=1; this teacher has lora_rank=16, lora_layers=2"):
        Trainer(config(mode="guided", teacher_from=str(tmp_path / "a"), lora_layers=2, frames=128, **small),
                tmp_path / "d", quiet=True)


@pytest.mark.parametrize("signal", ["advantage", "td_error"])
def test_the_feedback_signal_is_selectable_and_reaches_the_teacher(tmp_path, signal):
    trainer = Trainer(config(**{**TINY_MUTUAL, "frames": 512, "feedback_signal": signal}), tmp_path, quiet=True)
    rollout = trainer.collect_rollout(Timer())
    advantages, _ = compute_gae(rollout.rewards, rollout.values, rollout.dones, rollout.next_value, 0.99, 0.95)
    policy = trainer.student.own_policy(rollout.flat_obs).view(*rollout.actions.shape, -1)
    records = build_feedback(rollout, advantages, policy, signal, 0.99)
    expected = advantages if signal == "advantage" else td_errors(rollout, 0.99)
    key = rollout.keys[0][0]
    taken = int(rollout.actions[0, 0])
    visits = [(t, e) for t, row in enumerate(rollout.keys) for e, k in enumerate(row)
              if k == key and int(rollout.actions[t, e]) == taken]
    assert records[key].signal[taken] == pytest.approx(float(np.mean([float(expected[t, e]) for t, e in visits])), abs=1e-6)
    trainer.train()
    assert trainer.teacher.version >= 1


def test_public_api_example_from_the_readme(tmp_path):
    """The README's ten-line Python example, run as written (with a smaller budget)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert len(example.strip().splitlines()) <= 12
    code = example.replace("runs/api-example", str(tmp_path / "api")).replace("frames=20_000", "frames=2048")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert (tmp_path / "api" / "summary.json").is_file()
    assert namespace["summary"]["teacher_after"]["advice_accuracy"] == 1.0  # the bot agrees with itself


@pytest.mark.parametrize("advice", ["action", "subgoal"])
def test_a_student_with_memory_carries_it_across_rollouts_and_resets_it_where_episodes_start(tmp_path, advice):
    """The memory a rollout begins with is the one the last rollout ended with; re-reading a
    rollout from it, resetting at its episode starts, gives back the values the student acted on."""
    trainer = Trainer(config(env_id="BabyAI-GoToRedBallNoDists-v0", mode="guided", teacher="bot", advice=advice,
                             student="film", student_memory=8, num_envs=4, num_steps=64, frames=512, seed=0),
                      tmp_path, quiet=True)
    first = trainer.collect_rollout(Timer())
    assert not first.memory.any() and first.starts[0].all()  # fresh episodes everywhere
    assert first.starts[1:].sum() > 0  # some episodes ended inside the rollout (the bot's advice is good)
    second = trainer.collect_rollout(Timer())
    assert second.memory.abs().sum() > 0 and torch.equal(second.starts[0], first.dones[-1])
    for rollout in (first, second):
        flat = rollout.advice.flat()
        with torch.no_grad():
            _, values, _ = trainer.student(rollout.flat_obs, flat.shown, flat.gate, rollout.memory,
                                           rollout.starts.flatten())
            _, forgetful, _ = trainer.student(rollout.flat_obs, flat.shown, flat.gate)  # each step as a fresh episode
        assert torch.allclose(values, rollout.values.flatten(), atol=1e-5)
        starts = rollout.starts.flatten().bool()
        assert torch.allclose(values[starts], forgetful[starts], atol=1e-5)
        assert not torch.allclose(values[~starts], forgetful[~starts], atol=1e-3)

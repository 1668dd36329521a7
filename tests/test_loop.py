
import numpy as np
import pytest

from mutualrl.config import TrainConfig
from mutualrl.errors import MutualRLError
from mutualrl.feedback import TrustTable, collect_feedback, episode_outcomes
from mutualrl.loop import Trainer, frames_to_success
from mutualrl.report import build_report, run_comparison
from mutualrl.envs import NAVIGATION_ACTIONS, Situation

BUDGET = dict(env_id="BabyAI-GoToRedBallNoDists-v0", frames=8192, num_envs=8, num_steps=64, eval_episodes=10, eval_every=0)


def test_guided_by_the_bot_reaches_what_rl_does_not(tmp_path):
    rl = Trainer(TrainConfig(mode="rl", seed=0, **BUDGET), tmp_path / "rl", quiet=True)
    rl.train()
    guided = Trainer(TrainConfig(mode="guided", teacher="bot", seed=0, **BUDGET), tmp_path / "guided", quiet=True)
    guided.train()
    rl_best = max(r["success_rate"] for r in rl.run.read_metrics())
    guided_rows = guided.run.read_metrics()
    assert guided_rows[-1]["success_rate"] >= 0.9
    assert rl_best < 0.9
    assert {"lambda", "teacher_version", "time_teacher", "advice_followed_rate"} <= guided_rows[-1].keys()


def test_feedback_mode_needs_a_teacher_that_learns(tmp_path):
    with pytest.raises(MutualRLError, match="needs a teacher that learns"):
        Trainer(TrainConfig(mode="feedback", teacher="bot", **BUDGET), tmp_path, quiet=True)


def test_mutual_with_tiny_teacher_updates_teacher_and_logs_metrics(tmp_path):
    config = TrainConfig(mode="mutual", teacher="tiny", seed=0, frames=1024, num_envs=4, num_steps=32, eval_episodes=2,
                         eval_every=4, teacher_update_every=4, teacher_update_steps=1, teacher_batch=4)
    trainer = Trainer(config, tmp_path, quiet=True)
    summary = trainer.train()
    rows = trainer.run.read_metrics()
    assert [r["teacher_version"] for r in rows] == [0, 0, 0, 1, 1, 1, 1, 2]
    for key in ("lambda", "teacher_calls", "cache_hit_rate", "time_env", "time_teacher", "time_student_update",
                "time_teacher_update"):
        assert key in rows[-1]
    assert "teacher_success_rate" in rows[3] and "advice_accuracy" in rows[7]
    assert {"teacher_before", "teacher_after", "student_before", "student_after"} <= summary.keys()
    # the adapter survives a resume: the restored teacher gives the same advice
    resumed = Trainer.resume(tmp_path, frames=1152, quiet=True)
    assert resumed.teacher.version == 2
    sits = [Situation("go to the red ball", "You see no objects. A wall is 3 steps ahead.", NAVIGATION_ACTIONS)]
    assert np.allclose(resumed.teacher.advise(sits)[0].probs, trainer.teacher.advise(sits)[0].probs, atol=1e-5)


def test_a_new_run_starts_from_a_learnt_teacher(tmp_path):
    config = TrainConfig(mode="feedback", teacher="tiny", frames=256, num_envs=4, num_steps=32, eval_episodes=2,
                         eval_every=0, teacher_update_every=2, teacher_update_steps=2, teacher_batch=4, teacher_lr=5e-2)
    learnt = Trainer(config, tmp_path / "a", quiet=True)
    learnt.train()
    fresh = Trainer(TrainConfig(mode="guided", teacher="tiny", frames=128, num_envs=4, num_steps=32, eval_episodes=2,
                                eval_every=0), tmp_path / "plain", quiet=True)
    adopted = Trainer(TrainConfig(mode="guided", teacher="tiny", teacher_from=str(tmp_path / "a"), frames=128, num_envs=4,
                                  num_steps=32, eval_episodes=2, eval_every=0), tmp_path / "b", quiet=True)
    sits = [Situation("go to the red ball", "You see no objects. A wall is 3 steps ahead.", NAVIGATION_ACTIONS)]
    assert adopted.teacher.version == learnt.teacher.version == 1
    assert np.allclose(adopted.teacher.advise(sits)[0].probs, learnt.teacher.advise(sits)[0].probs, atol=1e-5)
    assert not np.allclose(fresh.teacher.advise(sits)[0].probs, learnt.teacher.advise(sits)[0].probs, atol=1e-3)
    with pytest.raises(MutualRLError, match="has no 'bot' teacher to start from"):
        Trainer(TrainConfig(mode="guided", teacher="bot", teacher_from=str(tmp_path / "a"), frames=128, num_envs=4,
                            num_steps=32, eval_episodes=2), tmp_path / "c", quiet=True)
    with pytest.raises(MutualRLError, match="adapter has lora_rank=16, lora_layers=1; this teacher has lora_rank=16, lora_layers=2"):
        Trainer(TrainConfig(mode="guided", teacher="tiny", teacher_from=str(tmp_path / "a"), lora_layers=2, frames=128,
                            num_envs=4, num_steps=32, eval_episodes=2), tmp_path / "d", quiet=True)


def test_feedback_is_grouped_by_prompt_and_action():
    a = Situation("go to the red ball", "You see no objects.", NAVIGATION_ACTIONS)
    b = Situation("go to the red ball", "You see a red ball 1 step forward.", NAVIGATION_ACTIONS)
    sits = [[a, b], [a, a]]
    actions = np.array([[0, 2], [0, 1]])
    adv = np.array([[1.0, 2.0], [3.0, -1.0]])
    outcomes = episode_outcomes(np.array([[False, True], [False, False]]), np.array([[False, True], [False, False]]))
    assert np.isnan(outcomes[0, 0]) and outcomes[0, 1] == 1.0 and np.isnan(outcomes[1, 1])
    policy = np.zeros((2, 2, 3))
    policy[0, 0], policy[1, 0], policy[1, 1], policy[0, 1] = [0.2, 0.3, 0.5], [0.4, 0.1, 0.5], [0.0, 0.6, 0.4], [0, 0, 1]
    items = {(i.situation.description, i.action): i for i in collect_feedback(sits, actions, adv, adv, outcomes, policy)}
    assert len(items) == 6  # every action of both prompts
    left = items[("You see no objects.", "turn left")]
    assert left.advantage == 2.0 and left.count == 2 and left.policy == pytest.approx(0.2)
    assert items[("You see no objects.", "turn right")].policy == pytest.approx((0.3 + 0.1 + 0.6) / 3)
    assert items[("You see no objects.", "turn right")].advantage == -1.0
    assert np.isnan(items[("You see no objects.", "go forward")].advantage)
    assert items[("You see no objects.", "go forward")].count == 0
    assert items[("You see a red ball 1 step forward.", "go forward")].success == 1.0


def test_trust_rises_for_advice_better_than_the_alternatives_and_vanishes_otherwise():
    table = TrustTable()
    assert table.trust("unseen") == 0.0  # no evidence, no pull
    keys = ["good"] * 40 + ["bad"] * 40
    followed = np.array([1, 0] * 40)
    # followed good advice: advantage +1 (alternatives -1); followed bad advice: -1 (alternatives +1)
    advantages = np.array([1.0, -1.0] * 20 + [-1.0, 1.0] * 20)
    for _ in range(5):
        table.update(keys, followed, advantages)
    assert table.trust("good") > 0.5
    assert table.trust("bad") == 0.0
    assert table.trust("unseen") == pytest.approx(0.0, abs=1e-9)  # overall no better than the alternatives


def test_trust_in_a_rarely_seen_situation_follows_the_overall_evidence():
    table = TrustTable()
    keys = ["common"] * 200 + ["rare"] * 2
    followed = np.array([1, 0] * 101)
    advantages = np.array([1.0, -1.0] * 100 + [-1.0, 1.0])
    table.update(keys, followed, advantages)
    assert table.trust("rare") > 0.5 and table.trust("unseen") > 0.5


def test_comparison_runs_resumes_and_report_rebuilds(tmp_path):
    base = TrainConfig(frames=512, num_envs=4, num_steps=32, eval_episodes=2, eval_every=2, teacher="bot")
    path = run_comparison(base, ["rl", "guided"], seeds=3, out=tmp_path, quiet=True)
    text = path.read_text()
    assert "| rl |" in text and "| guided |" in text and (tmp_path / "student_success.png").stat().st_size > 1000
    stamp = (tmp_path / "rl_seed0" / "summary.json").stat().st_mtime
    run_comparison(base, ["rl", "guided"], seeds=3, out=tmp_path, quiet=True)  # finished runs are not redone
    assert (tmp_path / "rl_seed0" / "summary.json").stat().st_mtime == stamp
    (tmp_path / "report.md").unlink()
    assert build_report(tmp_path).read_text() == text  # rebuilt from the saved runs alone
    assert "interquartile mean" in text
    assert (tmp_path / "teacher_success.png").is_file() and (tmp_path / "advice_accuracy.png").is_file()


def test_frames_to_success():
    rows = [{"frames": 10, "success_rate": 0.5}, {"frames": 20, "success_rate": 0.91}, {"frames": 30, "success_rate": 0.8}]
    assert frames_to_success(rows, 0.9) == 20 and frames_to_success(rows, 0.95) is None

import json

import pytest
import torch

from mutualrl.config import TrainConfig
from mutualrl.curriculum import ARMS, Curriculum, parse_arms, run_curriculum, stage_dirs
from mutualrl.errors import MutualRLError
from mutualrl.loop import Trainer
from mutualrl.report import build_curriculum_report
from mutualrl.tracking import ALONE, SUCCESS_WINDOW, RunDir

from machinery import SMALL_STUDENT

#: two short stages with the tiny teacher: the first ends on its target or budget, the second on its budget
TWO_STAGES = {
    **SMALL_STUDENT,
    "teacher": "tiny", "num_envs": 4, "num_steps": 16, "eval_every": 1, "eval_episodes": 2, "checkpoint_every": 1,
    "teacher_eval_every": 0,
    "teacher_update_every": 1, "teacher_batch": 8, "teacher_update_steps": 1,
    "action_mask": "none",  # (a student masking no-ops met the first stage's target by its first evaluation)
    "stages": [{"env_id": "BabyAI-GoToRedBallNoDists-v0", "frames": 128, "target": 0.9},
               {"env_id": "BabyAI-GoToRedBall-v0", "frames": 128, "target": 0.9}],
}


def test_a_run_stops_once_the_student_alone_reaches_its_target(tmp_path):
    config = TrainConfig(env_id="MiniGrid-Empty-5x5-v0", frames=5120, num_envs=8).replace(
        num_steps=32, eval_every=1, eval_episodes=8, target_success=0.5)
    summary = Trainer(config, tmp_path, quiet=True).train()
    alone = [row[ALONE] for row in RunDir(tmp_path).read_metrics()]
    assert summary["reached_target"] and summary["frames"] < config.frames
    assert alone[-1] >= 0.5 and all(a < 0.5 for a in alone[:-1])  # it stopped at the first evaluation that reached it
    resumed = Trainer.resume(tmp_path, quiet=True).train()  # a finished run is not trained further
    assert resumed["frames"] == summary["frames"]


def test_a_resumed_run_takes_a_new_target_and_stops_once_it_is_reached(tmp_path):
    """A run trained to its budget goes on to a larger one, now stopping at the target."""
    config = TrainConfig(env_id="MiniGrid-Empty-5x5-v0", frames=256, num_envs=8).replace(
        num_steps=32, eval_every=1, eval_episodes=8)
    Trainer(config, tmp_path, quiet=True).train()
    summary = Trainer.resume(tmp_path, frames=5120, target_success=0.5, quiet=True).train()
    alone = [row[ALONE] for row in RunDir(tmp_path).read_metrics()]
    assert summary["reached_target"] and 256 < summary["frames"] < 5120
    assert alone[-1] >= 0.5 and all(a < 0.5 for a in alone[:-1])
    assert TrainConfig.from_yaml(tmp_path / "config.yaml").evaluation.target == 0.5  # a later resume keeps it


def test_a_run_with_babyais_training_target_stops_once_it_and_the_held_out_target_are_reached(tmp_path):
    """BabyAI's criterion (the rolling success of the last 100 training episodes) beside ours:
    the run goes on past the first target reached until the other is reached too."""
    config = TrainConfig(env_id="MiniGrid-Empty-5x5-v0", frames=20480, num_envs=8).replace(
        num_steps=32, eval_every=1, eval_episodes=8, target_success=0.5, target_training_success=0.97)
    summary = Trainer(config, tmp_path, quiet=True).train()
    rows = RunDir(tmp_path).read_metrics()
    both = [r["episodes"] >= SUCCESS_WINDOW and r["success_rate"] >= 0.97 and max(q[ALONE] for q in rows[: i + 1]) >= 0.5
            for i, r in enumerate(rows)]
    assert summary["reached_target"] and summary["frames"] < config.frames
    assert both[-1] and not any(both[:-1])
    assert max(r[ALONE] for r in rows[:-1]) >= 0.5  # (measured: alone 1.0 an iteration before the training target)


def test_a_run_that_misses_its_target_spends_its_budget(tmp_path):
    config = TrainConfig(env_id="BabyAI-GoToLocal-v0", frames=512, num_envs=8).replace(
        num_steps=32, eval_every=1, eval_episodes=8, target_success=1.0)
    summary = Trainer(config, tmp_path, quiet=True).train()
    assert not summary["reached_target"] and summary["frames"] == 512


def test_a_stage_hands_over_once_its_target_is_reached(tmp_path):
    """Stage 0's budget would allow 48 iterations; the student reaches the target sooner (measured:
    after 24 on Empty-5x5 with all seven actions), and stage 1 starts from it then."""
    empty = {"env_id": "MiniGrid-Empty-5x5-v0", "frames": 12288, "target": 0.25}
    curriculum = Curriculum.from_dict({"num_envs": 8, "num_steps": 32, "eval_every": 1, "eval_episodes": 8,
                                       "stages": [empty, {**empty, "frames": 256}]})
    run_curriculum(curriculum, ["rl-carry"], seeds=1, out=tmp_path, quiet=True)
    first, second = stage_dirs(tmp_path, "rl-carry", 0, curriculum)
    summary = json.loads((first / "summary.json").read_text())
    assert summary["reached_target"] and summary["frames"] < 12288
    assert RunDir(first).read_metrics()[-1][ALONE] >= 0.25
    assert RunDir(second).read_config().student_from == str(first)
    assert json.loads((second / "summary.json").read_text())["frames"] == 256


def test_two_stage_curriculum_with_the_tiny_teacher_end_to_end_carries_what_each_arm_says(tmp_path):
    curriculum = Curriculum.from_dict(TWO_STAGES)  # its time is measured by `pytest --durations`, not asserted
    report = run_curriculum(curriculum, list(ARMS), seeds=1, out=tmp_path, quiet=True)
    assert json.loads((tmp_path / "failures.json").read_text()) == {}
    text = report.read_text()
    for arm in ARMS:
        for label in ("stage0_GoToRedBallNoDists", "stage1_GoToRedBall"):
            assert f"| {label} | 128, 0.90 | {arm} |" in text
    assert "x rl-carry" in text and (tmp_path / "curriculum_success.png").stat().st_size > 1000
    zero_shot = json.loads((tmp_path / "zero_shot" / "seed0.json").read_text())
    assert set(zero_shot) == {"stage0_GoToRedBallNoDists", "stage1_GoToRedBall"}
    for arm in ARMS:  # every stage ran on all seven actions with subgoal advice
        config = RunDir(stage_dirs(tmp_path, arm, 0, curriculum)[1]).read_config()
        assert config.action_space == "full" and config.guidance.advice == "subgoal"
    (tmp_path / "report.md").unlink()
    assert build_curriculum_report(tmp_path).read_text() == text  # rebuilt from what is on disk
    for arm in ARMS:
        _check_carried(curriculum, arm, tmp_path)


def _check_carried(curriculum: Curriculum, arm: str, out) -> None:
    """Stage 1 of `arm` starts from stage 0's student and teacher exactly where the arm carries them."""
    first = stage_dirs(out, arm, 0, curriculum)[0]
    learnt = RunDir(first).load_checkpoint()
    trainer = Trainer(curriculum.stage_config(ARMS[arm], 0, 1, first), out / f"probe_{arm}", quiet=True)
    student = trainer.student.state_dict()
    assert all(torch.equal(student[k], v) for k, v in learnt["model"].items()) == ARMS[arm].carry_student
    if ARMS[arm].mode == "mutual":  # both mutual arms carry the teacher, which stage 0 changed
        fresh = Trainer(curriculum.stage_config(ARMS[arm], 0, 1, None), out / f"fresh_{arm}", quiet=True)
        for teacher, carried in ((trainer.teacher, True), (fresh.teacher, False)):
            adapter = teacher.state_dict().get("adapter", {})  # an untaught teacher has none yet
            same = bool(adapter) and all(torch.equal(adapter[k], v) for k, v in learnt["teacher"]["adapter"].items())
            assert same == carried




def _killed_at(monkeypatch, calls: int) -> None:
    """Interrupt the process (as a kill would) at the `calls`-th training iteration from now."""
    iterate, count = Trainer.iterate, [0]

    def iterate_until_killed(self):
        count[0] += 1
        if count[0] == calls:
            raise KeyboardInterrupt
        return iterate(self)

    monkeypatch.setattr(Trainer, "iterate", iterate_until_killed)


@pytest.mark.parametrize("killed_at", [2, 3], ids=["within_a_stage", "between_stages"])
def test_a_killed_curriculum_resumes_where_it_stopped(killed_at, tmp_path, monkeypatch):
    curriculum = Curriculum.from_dict(TWO_STAGES)  # two iterations a stage
    _killed_at(monkeypatch, killed_at)
    with pytest.raises(KeyboardInterrupt):
        run_curriculum(curriculum, ["mutual-carry"], seeds=1, out=tmp_path, quiet=True)
    monkeypatch.undo()
    first, second = stage_dirs(tmp_path, "mutual-carry", 0, curriculum)
    finished_first = (first / "summary.json").is_file()
    assert finished_first == (killed_at == 3)
    stamp = (first / "summary.json").stat().st_mtime if finished_first else None
    run_curriculum(curriculum, ["mutual-carry"], seeds=1, out=tmp_path, quiet=True)
    for directory in (first, second):
        assert [row["iteration"] for row in RunDir(directory).read_metrics()] == [1, 2]  # none repeated or lost
        assert json.loads((directory / "summary.json").read_text())["frames"] == 128
    if finished_first:
        assert (first / "summary.json").stat().st_mtime == stamp  # a finished stage is not trained again
    assert RunDir(second).read_config().student_from == str(first)


@pytest.mark.parametrize("values, message", [
    ({"env_id": "BabyAI-GoToLocal-v0"}, "curriculum key 'env_id' is set by each stage or arm"),
    ({"stages": []}, "stages must be a non-empty list"),
    ({"stages": [{"env_id": "BabyAI-GoToLocal-v0", "frames": 100}]}, "stage 0 must hold exactly env_id, frames and target"),
    ({"stages": [{"env_id": "BabyAI-GoToLocal-v0", "frames": 100, "target": 1.5}]}, "stage 0 target must be"),
    ({"stages": [{"env_id": "BabyAI-Nope-v0", "frames": 100, "target": 0.9}]}, "stage 0 (BabyAI-Nope-v0): unknown environment"),
    ({"eval_every": 0}, "target_success=0.9 needs held-out evaluations"),
    ({"guidance": {"advice": "action"}}, "curriculum key advice='action': a curriculum runs with advice: subgoal"),
])
def test_a_bad_curriculum_is_refused_with_one_clear_message(values, message):
    with pytest.raises(MutualRLError) as err:
        Curriculum.from_dict(values)
    assert message in str(err.value)


def test_arms_are_checked_by_name():
    assert parse_arms("rl, mutual-carry") == ["rl", "mutual-carry"]
    with pytest.raises(MutualRLError, match="unknown arm 'mutual-car'; allowed: rl, rl-carry, mutual, mutual-carry, bot"):
        parse_arms("rl,mutual-car")


def test_failures_of_arms_not_run_again_are_kept(tmp_path):
    curriculum = Curriculum.from_dict(TWO_STAGES)
    (tmp_path / "failures.json").write_text(json.dumps({"bot_seed0": "Boom", "rl_seed0": "Old"}))
    run_curriculum(curriculum, ["rl"], seeds=1, out=tmp_path, quiet=True)
    assert json.loads((tmp_path / "failures.json").read_text()) == {"bot_seed0": "Boom"}


def test_a_curriculum_directory_holds_one_curriculum(tmp_path):
    curriculum = Curriculum.from_dict(TWO_STAGES)
    run_curriculum(curriculum, ["rl"], seeds=1, out=tmp_path, quiet=True)
    other = Curriculum.from_dict({**TWO_STAGES, "num_envs": 8})
    with pytest.raises(MutualRLError, match="holds another curriculum"):
        run_curriculum(other, ["rl"], seeds=1, out=tmp_path, quiet=True)


def test_a_student_is_carried_only_into_a_run_of_the_same_action_space(tmp_path):
    small = {"num_envs": 4, "num_steps": 16, "eval_episodes": 2}
    Trainer(TrainConfig(frames=64).replace(**small), tmp_path / "task", quiet=True).train()
    with pytest.raises(MutualRLError, match=r"this run needs a '\w+' student \(memory \d+\) with 7 actions and 'action' advice"):
        Trainer(TrainConfig(frames=64, action_space="full", student_from=str(tmp_path / "task")).replace(**small),
                tmp_path / "full", quiet=True)
    carried = Trainer(TrainConfig(frames=64, student_from=str(tmp_path / "task")).replace(**small), tmp_path / "same",
                      quiet=True)
    learnt = RunDir(tmp_path / "task").load_checkpoint()["model"]
    assert all(torch.equal(carried.student.state_dict()[k], v) for k, v in learnt.items())

import pytest

from mutualrl.config import TrainConfig
from mutualrl.errors import MutualRLError


def test_flat_keys_of_older_files_and_nested_sections_give_the_same_config(tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text("env_id: BabyAI-GoToLocal-v0\nmode: mutual\nnum_steps: 32\nteacher: tiny\nteacher_lr: 1.0e-3\n"
                    "guidance_start: 0.5\neval_every: 4\n")
    nested = tmp_path / "nested.yaml"
    nested.write_text("env_id: BabyAI-GoToLocal-v0\nmode: mutual\nppo: {num_steps: 32}\n"
                      "teacher: {name: tiny, lr: 0.001}\nguidance: {start: 0.5}\nevaluation: {every: 4}\n")
    a, b = TrainConfig.from_yaml(flat), TrainConfig.from_yaml(nested)
    assert a == b
    assert a.ppo.num_steps == 32 and a.teacher.name == "tiny" and a.teacher.lr == 1e-3 and a.guidance.start == 0.5
    assert TrainConfig.from_dict(a.to_dict()) == a  # what a checkpoint stores reads back


@pytest.mark.parametrize("values, message", [
    ({"teacher": {"rate": 1}}, "unknown key 'rate' in config section 'teacher'; allowed: name, start_from"),
    ({"num_stepz": 3}, "unknown config key 'num_stepz'"),
    ({"ppo": 3}, "config section 'ppo' must hold a mapping"),
    ({"frames": "many"}, "config key frames='many' must be of type int"),
])
def test_bad_keys_and_values_name_themselves(values, message):
    with pytest.raises(MutualRLError, match=message):
        TrainConfig.from_dict(values)


@pytest.mark.parametrize("values, message", [
    ({"feedback_signal": "reward"}, "unknown feedback_signal 'reward'; allowed: advantage, td_error"),
    ({"trust_rate": 0.0}, "trust_rate must be > 0, got 0.0"),
    ({"teacher_lr": -1.0}, "teacher_lr must be > 0, got -1.0"),
    ({"advice_prob": 2.0}, "advice_prob must be in [0, 1], got 2.0"),
    ({"action_space": "some"}, "unknown action_space 'some'; allowed: task, full"),
    ({"endpoint_timeout": 0.0}, "endpoint_timeout must be > 0, got 0.0"),
    ({"endpoint_in_flight": 0}, "endpoint_in_flight must be > 0, got 0"),
    ({"endpoint_retries": -1}, "endpoint_retries must be >= 0, got -1"),
    ({"endpoint_cooldown": -5.0}, "endpoint_cooldown must be >= 0, got -5.0"),
])
def test_validation_names_the_flat_key(values, message):
    with pytest.raises(MutualRLError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig().replace(**values).validate()


def test_replace_copies_sections():
    base = TrainConfig()
    changed = base.replace(teacher_lr=0.5, mode="mutual")
    assert changed.teacher.lr == 0.5 and base.teacher.lr != 0.5 and changed.mode == "mutual"

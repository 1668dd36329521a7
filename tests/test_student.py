
import torch

from mutualrl.config import TrainConfig
from mutualrl.evaluation import evaluate_student
from mutualrl.loop import Trainer, load_student
from mutualrl.student import compute_gae


def test_gae_matches_hand_computed_example():
    # one env, 3 steps, the episode ends after step 1 (index 1); gamma=0.9, lambda=0.5
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [0.2], [1.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    next_value = torch.tensor([3.0])
    adv, ret = compute_gae(rewards, values, dones, next_value, gamma=0.9, gae_lambda=0.5)
    d2 = 2.0 + 0.9 * 3.0 - 1.0          # 3.7, bootstraps from next_value
    d1 = 0.0 + 0.0 - 0.2                # -0.2, no bootstrap across the episode end
    d0 = 1.0 + 0.9 * 0.2 - 0.5          # 0.68
    a2, a1 = d2, d1                      # the end cuts the trace
    a0 = d0 + 0.9 * 0.5 * a1
    assert torch.allclose(adv.squeeze(1), torch.tensor([a0, a1, a2]))
    assert torch.allclose(ret, adv + values)


def test_short_training_run_learns_empty_room(tmp_path):
    config = TrainConfig(env_id="MiniGrid-Empty-5x5-v0", mode="rl", frames=16_384, seed=0, num_envs=8, eval_episodes=20)
    before = evaluate_student(Trainer(config, tmp_path / "untrained", quiet=True).model, config.env_id, 20, seed=0)
    summary = Trainer(config, tmp_path / "run", quiet=True).train()
    assert before.success_rate < 0.5
    assert summary["student_after"]["success_rate"] >= 0.9
    _, model = load_student(tmp_path / "run")
    assert evaluate_student(model, config.env_id, 20, seed=0).success_rate >= 0.9

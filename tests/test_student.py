
import torch

from mutualrl.config import PPOConfig, TrainConfig
from mutualrl.evaluation import evaluate_student
from mutualrl.loop import Trainer
from mutualrl.student import ActorCritic, PPOBatch, compute_gae, load_student, ppo_update

ONE_PASS = PPOConfig(update_epochs=1, minibatches=1, ent_coef=0.0)


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
    config = TrainConfig(env_id="MiniGrid-Empty-5x5-v0", mode="rl", frames=16_384, seed=0, num_envs=8).replace(
        eval_episodes=20)
    before = evaluate_student(Trainer(config, tmp_path / "untrained", quiet=True).student, config.env_id, 20, seed=0)
    summary = Trainer(config, tmp_path / "run", quiet=True).train()
    assert before.success_rate < 0.5
    assert summary["student_after"]["success_rate"] >= 0.9
    _, model = load_student(tmp_path / "run")
    assert evaluate_student(model, config.env_id, 20, seed=0).success_rate >= 0.9


def test_ppo_ratios_include_the_advice_logits_the_student_acted_with():
    """The acting policy is softmax(logits + advice_logits); PPO must score the same policy, so the
    first pass over the rollout (no parameter change yet) has ratio 1 everywhere."""
    torch.manual_seed(0)
    model = ActorCritic(3)
    with torch.no_grad():
        model.actor.weight.normal_()  # a non-uniform policy, so that a missing term would show
    n = 64
    obs = {"image": torch.randint(0, 6, (n, 7, 7, 3)), "direction": torch.randint(0, 4, (n,)),
           "mission": torch.randint(0, 5, (n, 4))}
    advice = torch.softmax(torch.randn(n, 3) * 3, -1)
    advice_logits = 2.0 * advice.log()
    with torch.no_grad():
        actions, logprobs, values, _ = model.act(obs, advice, advice_logits)
    batch = PPOBatch(obs=obs, advice=advice, gate=torch.ones(n), advice_logits=advice_logits, teacher_probs=advice,
                     guidance_weight=torch.zeros(n), actions=actions, logprobs=logprobs,
                     advantages=torch.randn(n), returns=torch.randn(n), values=values)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    stats = ppo_update(model, optimizer, batch, ONE_PASS)
    assert abs(stats["approx_kl"]) < 1e-6 and stats["clipfrac"] == 0.0
    batch.advice_logits = torch.zeros_like(advice_logits)  # scoring without them is another policy
    stats = ppo_update(model, optimizer, batch, ONE_PASS)
    assert stats["approx_kl"] > 1e-3


def test_the_subgoal_gate_mixes_the_shown_subgoal_with_the_students_own_per_row():
    """gate 1: the teacher's subgoal is the input; gate 0: the student's own grounding (as alone);
    in between, the mixture; each row as if computed on its own."""
    torch.manual_seed(0)
    model = ActorCritic(3, advice="subgoal")
    n = 4
    obs = {"image": torch.randint(0, 6, (n, 7, 7, 3)), "direction": torch.randint(0, 4, (n,)),
           "mission": torch.randint(0, 5, (n, 8))}
    advice = torch.rand(n, model.advice_dim)
    gate = torch.tensor([1.0, 0.0, 0.5, 0.0])
    mixed, _ = model(obs, advice, gate)
    shown, _ = model(obs, advice)
    alone, _ = model.alone(obs)
    assert torch.allclose(mixed[0], shown[0]) and torch.allclose(mixed[[1, 3]], alone[[1, 3]])
    assert not torch.allclose(mixed[2], shown[2]) and not torch.allclose(mixed[2], alone[2])
    with torch.no_grad():
        own = model.own_subgoal(*model._inputs(obs))
    half, _ = model(obs, 0.5 * advice + 0.5 * own)
    assert torch.allclose(mixed[2], half[2], atol=1e-6)

import numpy as np
import pytest
import torch

from mutualrl.envs import NAVIGATION_ACTIONS, Situation
from mutualrl.feedback import PromptFeedback, build_feedback, merge_feedback, td_errors
from mutualrl.rollout import AdviceRecord, Rollout

A = Situation("go to the red ball", "You see no objects.", NAVIGATION_ACTIONS)
B = Situation("go to the red ball", "You see a red ball 1 step forward.", NAVIGATION_ACTIONS)


def rollout(sits, actions, rewards, dones, successes, values, next_value) -> Rollout:
    steps, envs = np.asarray(actions).shape
    return Rollout(obs={}, advice=AdviceRecord.stack([AdviceRecord.none(envs, 3, 3, torch.device("cpu"))] * steps),
                   actions=torch.tensor(actions), logprobs=torch.zeros(steps, envs), values=torch.tensor(values),
                   rewards=torch.tensor(rewards), dones=torch.tensor(dones, dtype=torch.float32),
                   successes=np.asarray(successes), next_value=torch.tensor(next_value), situations=sits,
                   keys=[[s.description for s in row] for row in sits])


def two_step_rollout() -> Rollout:
    return rollout([[A, B], [A, A]], actions=[[0, 2], [0, 1]], rewards=[[0.0, 0.9], [0.0, 0.0]],
                   dones=[[0, 1], [0, 0]], successes=[[False, True], [False, False]],
                   values=[[0.5, 0.6], [0.4, 0.3]], next_value=[0.2, 0.1])


def test_one_record_per_prompt_with_signal_counts_policy_and_outcome():
    r = two_step_rollout()
    advantages = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    policy = torch.tensor([[[0.2, 0.3, 0.5], [0, 0, 1]], [[0.4, 0.1, 0.5], [0.0, 0.6, 0.4]]])
    records = build_feedback(r, advantages, policy, "advantage", gamma=0.9)
    assert list(records) == [A.description, B.description]  # first-visit order
    a, b = records[A.description], records[B.description]
    assert a.visits == 3 and a.counts.tolist() == [2, 1, 0]
    assert a.signal[0] == pytest.approx(2.0) and a.signal[1] == pytest.approx(-1.0) and np.isnan(a.signal[2])
    assert a.policy == pytest.approx([0.2, (0.3 + 0.1 + 0.6) / 3, (0.5 + 0.5 + 0.4) / 3])
    assert np.isnan(a.outcome)  # no episode through A has finished
    assert b.outcome == 1.0 and b.signal[2] == pytest.approx(2.0)


def test_td_error_signal_is_the_critics_one_step_error():
    r = two_step_rollout()
    td = td_errors(r, gamma=0.9)
    assert td[0, 0].item() == pytest.approx(0.0 + 0.9 * 0.4 - 0.5)  # r + gamma V(s') - V(s)
    assert td[0, 1].item() == pytest.approx(0.9 - 0.6)  # episode ended: no bootstrap
    assert td[1, 0].item() == pytest.approx(0.0 + 0.9 * 0.2 - 0.4)  # last step: bootstraps next_value
    records = build_feedback(r, torch.zeros(2, 2), torch.full((2, 2, 3), 1 / 3), "td_error", gamma=0.9)
    assert records[A.description].signal[0] == pytest.approx((td[0, 0] + td[1, 0]).item() / 2)


def test_records_of_two_rollouts_merge_into_what_one_long_rollout_gives():
    first, second = two_step_rollout(), two_step_rollout()
    policy = torch.rand(2, 2, 3)
    adv1, adv2 = torch.randn(2, 2), torch.randn(2, 2)
    merged = merge_feedback(build_feedback(first, adv1, policy, "advantage", 0.9),
                            build_feedback(second, adv2, policy, "advantage", 0.9))
    joined = rollout(first.situations + second.situations, actions=[[0, 2], [0, 1], [0, 2], [0, 1]],
                     rewards=[[0.0, 0.9], [0.0, 0.0]] * 2, dones=[[0, 1], [0, 0]] * 2,
                     successes=[[False, True], [False, False]] * 2, values=[[0.5, 0.6], [0.4, 0.3]] * 2,
                     next_value=[0.2, 0.1])
    whole = build_feedback(joined, torch.cat([adv1, adv2]), torch.cat([policy, policy]), "advantage", 0.9)
    for key in whole:
        assert np.allclose(merged[key].signal, whole[key].signal, equal_nan=True)
        assert np.allclose(merged[key].policy, whole[key].policy)
        assert merged[key].counts.tolist() == whole[key].counts.tolist()


def test_a_record_survives_its_checkpoint_form():
    record = build_feedback(two_step_rollout(), torch.ones(2, 2), torch.full((2, 2, 3), 1 / 3), "advantage", 0.9)
    for original in record.values():
        copy = PromptFeedback.from_dict(original.to_dict())
        assert copy.situation == original.situation and copy.visits == original.visits
        assert np.array_equal(copy.signal, original.signal, equal_nan=True)

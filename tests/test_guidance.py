import numpy as np
import pytest
import torch

from mutualrl.config import GuidanceConfig
from mutualrl.envs import NAVIGATION_ACTIONS, Situation
from mutualrl.guidance import ADVICE_FLOOR, ActionGuidance
from mutualrl.trust import TrustTable
from mutualrl.teachers import Advice, Teacher


class FixedTeacher(Teacher):
    """A teacher that always gives the same distribution: what Guidance does with it is under test."""

    def __init__(self, probs):
        super().__init__()
        self.probs = np.asarray(probs, dtype=float)

    def advise(self, situations, envs=None):
        return [Advice(probs=self.probs) for _ in situations]


def test_advice_is_shown_at_the_configured_rate_and_pulls_only_as_far_as_trusted():
    sits = [Situation("go to the red ball", f"You see no objects {i}.", NAVIGATION_ACTIONS) for i in range(400)]
    keys = [f"k{i}" for i in range(400)]
    guidance = ActionGuidance(GuidanceConfig(advice_prob=0.25, advice_weight=2.0), FixedTeacher([0.1, 0.2, 0.7]),
                        np.random.default_rng(0), torch.device("cpu"))
    record = guidance.advise(sits, keys, envs=[None] * len(sits), frames=0, entropy=np.zeros(len(sits)))
    shown = record.shown.sum(-1) > 0
    assert 0.15 < shown.float().mean() < 0.35
    assert torch.allclose(record.shown[shown], torch.tensor([0.1, 0.2, 0.7]))
    assert torch.all(record.logits == 0)  # no evidence yet: trust 0, no pull
    guidance.trust._sums[None] = np.array([50.0, 50.0, -50.0, 50.0])  # strong overall evidence for the advice
    record = guidance.advise(sits, keys, envs=[None] * len(sits), frames=0, entropy=np.zeros(len(sits)))
    trust = record.trust[0].item()
    assert trust > 0.9
    shown = record.shown.sum(-1) > 0
    expected = 2.0 * trust * torch.tensor([0.1, 0.2, 0.7]).clamp(min=ADVICE_FLOOR).log()
    assert torch.allclose(record.logits[shown], expected.expand(int(shown.sum()), 3), atol=1e-6)
    assert torch.all(record.logits[~shown] == 0)


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


def test_trust_settings_come_from_the_config():
    """A wider confidence margin withholds trust that the default margin grants."""
    keys, followed = ["s"] * 8, np.array([1, 0] * 4)
    advantages = np.array([1.0, -1.0, 0.5, -0.5, 1.0, -1.0, 0.2, -0.2])
    default, cautious = (ActionGuidance(GuidanceConfig(trust_confidence=c), FixedTeacher([1.0, 0, 0]),
                                  np.random.default_rng(0), torch.device("cpu")).trust for c in (2.0, 10.0))
    for table in (default, cautious):
        table.update(keys, followed, advantages)
    assert default.trust("s") > 0 and cautious.trust("s") == 0.0

"""Shared fixtures: tiny randomly initialised language models (never the 135M one)."""

from __future__ import annotations

import os

import gymnasium as gym
import pytest
import torch

from mutualrl.envs import ACTION_TEXTS, NAVIGATION_ACTIONS, Situation, describe

IN_A_TEST_PROCESS_OF_TWO = "PYTEST_XDIST_WORKER" in os.environ  # `make test`: one thread each, also in the
if IN_A_TEST_PROCESS_OF_TWO:                                      # commands they start (`mutualrl ...`)
    os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1 if IN_A_TEST_PROCESS_OF_TWO else 2)


@pytest.fixture(scope="session")
def tiny_causal():
    from mutualrl.teachers.models import tiny_model

    return tiny_model("causal", seed=0)


@pytest.fixture(scope="session")
def tiny_seq2seq():
    from mutualrl.teachers.models import tiny_model

    return tiny_model("seq2seq", seed=0)


def real_situations(env_ids_and_seeds, actions=NAVIGATION_ACTIONS) -> list[Situation]:
    """Situations rendered from real environment resets."""
    out = []
    for env_id, seed in env_ids_and_seeds:
        obs, _ = gym.make(env_id).reset(seed=seed)
        out.append(Situation(obs["mission"], describe(obs), actions))
    return out


@pytest.fixture
def situations_mixed():
    return real_situations([("BabyAI-GoToRedBallNoDists-v0", 0), ("BabyAI-GoToRedBallNoDists-v0", 4),
                            ("BabyAI-GoToLocal-v0", 1), ("BabyAI-GoToRedBallNoDists-v0", 7)], ACTION_TEXTS)

"""Shared fixtures: tiny randomly initialised language models (never the 135M one)."""

from __future__ import annotations

import copy
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
def tiny_models():
    """Each kind's tiny model and tokenizer, built once."""
    from mutualrl.teachers.models import tiny_model

    return {kind: tiny_model(kind, seed=0) for kind in ("causal", "seq2seq")}


@pytest.fixture
def tiny_causal(tiny_models):
    """A copy of the tiny causal model per test: a teacher casts its model to its precision in place."""
    model, tokenizer = tiny_models["causal"]
    return copy.deepcopy(model), tokenizer


@pytest.fixture
def tiny_seq2seq(tiny_models):
    model, tokenizer = tiny_models["seq2seq"]
    return copy.deepcopy(model), tokenizer


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

import gymnasium as gym
import numpy as np
import pytest
import torch
from minigrid.core.actions import Actions
from minigrid.core.world_object import Ball, Box, Door, Key, Wall

from minigrid.utils.baby_ai_bot import BabyAIBot, DisappearedBoxError

from mutualrl.envs import (ACTION_TEXTS, FULL_ACTIONS, NAVIGATION_ACTIONS, QuietReset, acts_with_effect, check_env_id,
                           describe, encode_mission, make_env, registered_env_ids, task_actions)
from mutualrl.errors import MutualRLError


def empty_room(agent=(3, 6), direction=3):
    """An 8x8 GoTo room emptied of objects, the agent placed at `agent` facing `direction`."""
    env = gym.make("BabyAI-GoToRedBallNoDists-v0")
    env.reset(seed=0)
    u = env.unwrapped
    for i in range(1, u.width - 1):
        for j in range(1, u.height - 1):
            u.grid.set(i, j, None)
    u.agent_pos, u.agent_dir, u.carrying = np.array(agent), direction, None
    return u


def test_describe_positions_colours_and_wall_ahead():
    u = empty_room()  # facing up from (3, 6): the top wall is 6 cells ahead
    u.grid.set(1, 3, Ball("red"))  # 2 left, 3 forward
    u.grid.set(5, 5, Key("blue"))  # 2 right, 1 forward
    u.grid.set(3, 2, Box("purple"))  # straight ahead, 4 forward
    text = describe(u.gen_obs())
    assert "You see a red ball 2 steps left and 3 steps forward." in text
    assert "You see a blue key 2 steps right and 1 step forward." in text
    assert "You see a purple box 4 steps forward." in text
    assert "A wall is 6 steps ahead." in text
    assert "carry" not in text
    # nearest first
    assert text.index("blue key") < text.index("red ball") < text.index("purple box")


def test_describe_turning_changes_sides():
    u = empty_room(agent=(3, 3), direction=0)  # facing right (+x)
    u.grid.set(5, 1, Ball("green"))  # 2 forward, 2 to the left when facing +x
    assert "You see a green ball 2 steps left and 2 steps forward." in describe(u.gen_obs())
    u.agent_dir = 1  # facing down (+y): the ball is now behind-left, out of view
    assert "green ball" not in describe(u.gen_obs())


def test_describe_wall_right_in_front_closed_door_and_carried_object():
    u = empty_room(agent=(3, 1), direction=3)  # the top wall is adjacent
    u.carrying = Key("yellow")
    text = describe(u.gen_obs())
    assert "A wall is right in front of you." in text
    assert text.endswith("You carry a yellow key.")
    u = empty_room(agent=(3, 6), direction=3)
    u.grid.set(3, 4, Door("grey", is_open=False))
    u.grid.set(3, 3, Wall())
    text = describe(u.gen_obs())
    assert "A closed grey door is 2 steps ahead." in text
    assert "You see a closed grey door 2 steps forward." in text


def test_describe_empty_view():
    u = empty_room(agent=(3, 6), direction=1)  # facing the bottom wall
    assert describe(u.gen_obs()) == "You see no objects. A wall is right in front of you."


def test_text_actions_map_one_to_one_to_minigrid_actions():
    names = {"turn left": "left", "turn right": "right", "go forward": "forward", "pick up": "pickup",
             "drop": "drop", "toggle": "toggle"}
    assert len(set(ACTION_TEXTS)) == len(ACTION_TEXTS)
    for i, text in enumerate(ACTION_TEXTS):
        assert Actions(i).name == names[text]
    u = empty_room(agent=(3, 3), direction=0)
    u.step(ACTION_TEXTS.index("turn left"))
    assert u.agent_dir == 3
    u.step(ACTION_TEXTS.index("go forward"))
    assert tuple(u.agent_pos) == (3, 2)


def test_task_actions_follow_what_the_level_places_and_asks():
    assert task_actions("BabyAI-GoToRedBallNoDists-v0") == NAVIGATION_ACTIONS
    assert task_actions("BabyAI-PickupLoc-v0") == ACTION_TEXTS
    assert task_actions("BabyAI-GoToObjMaze-v0") == ACTION_TEXTS  # a go-to mission behind closed doors
    assert task_actions("MiniGrid-Empty-5x5-v0") == NAVIGATION_ACTIONS
    assert task_actions("MiniGrid-GoToDoor-5x5-v0") == FULL_ACTIONS  # ends on `done`
    assert task_actions("BabyAI-GoToRedBall-v0", "full") == FULL_ACTIONS


def test_the_default_action_space_loses_the_bot_nothing_on_any_babyai_level():
    """Wherever the bot solves an episode with all seven actions, it used none that the level's
    default action space leaves out (so with that space it would act the same and succeed)."""
    solved = 0
    for env_id in (e for e in registered_env_ids() if e.startswith("BabyAI-")):
        env, default = QuietReset(gym.make(env_id)), set(task_actions(env_id))
        for seed in range(2):
            env.reset(seed=seed)
            bot, used = BabyAIBot(env), set()
            for _ in range(env.unwrapped.max_steps):
                try:
                    action = bot.replan()
                except (AssertionError, DisappearedBoxError):  # a level the bot cannot plan (KeyInBox)
                    break
                used.add(FULL_ACTIONS[int(action)])
                _, reward, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
            if terminated and reward > 0:
                solved += 1
                assert used <= default, f"{env_id} seed {seed}: the bot needed {used - default}"
    assert solved >= 180  # of 192 episodes: the bot fails KeyInBox and the PutNext...Carrying levels


def test_the_acts_with_effect_are_exactly_those_that_change_the_level():
    """Read from the view alone, an act is marked as changing something exactly where MiniGrid's
    step changes the agent's pose, its hands or the grid (random acts, new layouts as episodes end);
    each of forward, pick up, drop and toggle is met both ways."""
    rng, steps, agreed, kinds = np.random.default_rng(0), 0, 0, set()
    for env_id in ("BabyAI-KeyCorridorS3R1-v0", "BabyAI-BlockedUnlockPickup-v0", "MiniGrid-DoorKey-5x5-v0"):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=0)
        level = env.unwrapped
        for _ in range(400):
            effect = acts_with_effect(torch.as_tensor(obs["image"])[None], 6)[0]
            action = int(rng.integers(6))
            before = (tuple(level.agent_pos), level.agent_dir, level.carrying and level.carrying.encode(),
                      level.grid.encode().tobytes())
            obs, _, terminated, truncated, _ = env.step(action)
            after = (tuple(level.agent_pos), level.agent_dir, level.carrying and level.carrying.encode(),
                     level.grid.encode().tobytes())
            steps, agreed = steps + 1, agreed + (bool(effect[action]) == (before != after or terminated))
            kinds.add((action, bool(effect[action])))
            if terminated or truncated:
                obs, _ = env.reset(seed=int(rng.integers(1_000_000)))
    assert agreed == steps
    assert {(a, changes) for a in (2, 3, 4, 5) for changes in (False, True)} <= kinds


def test_unknown_env_names_it_and_suggests():
    with pytest.raises(MutualRLError) as err:
        check_env_id("BabyAI-GoToRedBal-v0")
    message = str(err.value)
    assert "'BabyAI-GoToRedBal-v0'" in message and "BabyAI-GoToRedBall-v0" in message
    assert "\n" not in message


def test_make_env_vectorises_and_encodes_missions():
    envs = make_env("BabyAI-GoToRedBallNoDists-v0", 3, seed=1)
    obs, _ = envs.reset(seed=1)
    assert obs["image"].shape == (3, 7, 7, 3)
    assert list(obs["mission"]) == ["go to the red ball"] * 3
    ids = encode_mission("go to the red ball")
    assert (ids[:5] > 0).all() and (ids[5:] == -1).all()
    envs.close()

import numpy as np
import pytest
import torch

from mutualrl.config import PPOConfig, TrainConfig
from mutualrl.envs import acts_with_effect, encode_mission
from mutualrl.errors import MutualRLError
from mutualrl.evaluation import evaluate_student
from mutualrl.loop import Trainer
from mutualrl.ppo import PPOBatch, compute_gae, ppo_update
from mutualrl.student import ActorCritic
from mutualrl.students import STUDENTS, load_student, make_student
from mutualrl.subgoals import VERBS
from mutualrl.tracking import RunDir


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


def _random_obs(rows: int, words: int = 4) -> dict[str, torch.Tensor]:
    return {"image": torch.randint(0, 6, (rows, 7, 7, 3)), "direction": torch.randint(0, 4, (rows,)),
            "mission": torch.randint(0, 5, (rows, words))}


STUDENT_KINDS = [(architecture, 0) for architecture in STUDENTS] + [("film", 16), ("mlp", 16)]


@pytest.mark.parametrize("architecture,memory", STUDENT_KINDS)
def test_ppo_ratios_include_the_advice_logits_the_student_acted_with(architecture, memory):
    """The acting policy is softmax(logits + advice_logits); PPO must score the same policy, so the
    first pass over the rollout (no parameter change yet) has ratio 1 everywhere, with every
    student: with memory, PPO re-reads whole sequences from the memory the rollout began with,
    resetting where episodes began, as the student did while acting step by step."""
    torch.manual_seed(0)
    model = make_student(architecture, 3, "action", memory)
    with torch.no_grad():
        model.actor.weight.normal_()  # a non-uniform policy, so that a missing term would show
    steps, envs = 16, 4
    n = steps * envs
    obs = _random_obs(n)
    advice = torch.softmax(torch.randn(n, 3) * 3, -1)
    advice_logits = 2.0 * advice.log()
    starts = (torch.rand(n) < 0.2).float()
    memory = model.initial_memory(envs)
    if memory is not None:
        memory.normal_()  # the memory a copy carried in from the last rollout
    first_memory, acted = memory, []
    with torch.no_grad():
        for t in range(steps):
            rows = slice(t * envs, (t + 1) * envs)
            step = model.act({k: v[rows] for k, v in obs.items()}, advice[rows], advice_logits[rows],
                             memory=memory, starts=starts[rows])
            memory = step.memory
            acted.append(step)
    batch = PPOBatch(obs=obs, advice=advice, gate=torch.ones(n), advice_logits=advice_logits, teacher_probs=advice,
                     guidance_weight=torch.zeros(n), actions=torch.cat([a.action for a in acted]),
                     logprobs=torch.cat([a.logprob for a in acted]), advantages=torch.randn(n),
                     returns=torch.randn(n), values=torch.cat([a.value for a in acted]), starts=starts,
                     memory=first_memory)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    one_pass = PPOConfig(update_epochs=1, minibatches=2, ent_coef=0.0)
    stats = ppo_update(model, optimizer, batch, one_pass)
    assert abs(stats["approx_kl"]) < 1e-6 and stats["clipfrac"] == 0.0
    batch.advice_logits = torch.zeros_like(advice_logits)  # scoring without them is another policy
    stats = ppo_update(model, optimizer, batch, one_pass)
    assert stats["approx_kl"] > 1e-3


@pytest.mark.parametrize("architecture", list(STUDENTS))
def test_memory_is_reset_where_an_episode_starts_and_carried_elsewhere(architecture):
    torch.manual_seed(0)
    model = make_student(architecture, 3, "action", memory=16)
    obs = _random_obs(2)
    carried = torch.randn(2, 32)
    with torch.no_grad():
        logits, values, after = model.alone(obs, carried, starts=torch.tensor([1.0, 0.0]))
        fresh_logits, fresh_values, _ = model.alone(obs)  # no memory given: a fresh episode
    assert torch.equal(logits[0], fresh_logits[0]) and values[0] == fresh_values[0]
    assert not torch.allclose(logits[1], fresh_logits[1]) and values[1] != fresh_values[1]
    assert after.shape == (2, 32) and not torch.equal(after[1], carried[1])


@pytest.mark.parametrize("architecture", list(STUDENTS))
def test_the_memory_reads_a_sequence_as_a_cell_stepped_through_it_and_loads_a_cells_weights(architecture):
    """The memory runs each episode of a sequence in one call of the fused LSTM. It must give what
    an LSTM cell stepped row by row gives (the memory as students were saved before: its weights
    load under the cell's names), resetting where episodes begin and carrying the rest."""
    torch.manual_seed(0)
    cell = torch.nn.LSTMCell(64, 16)
    model = make_student(architecture, 3, "action", memory=16)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("lstm.")}
    model.load_state_dict(state | {f"lstm.{k}": v for k, v in cell.state_dict().items()})
    steps, envs = 12, 3
    features, memory = torch.randn(steps * envs, 64), torch.randn(envs, 32)
    starts = torch.zeros(steps, envs)
    starts[0, 0] = starts[4, 0] = starts[5, 0] = starts[9, 1] = 1  # copy 2 runs on from its memory throughout
    with torch.no_grad():
        recalled, _ = model._recall(features, memory, starts.flatten())
        hidden, state_of_cell = memory.chunk(2, -1)
        stepped = []
        for x, fresh in zip(features.view(steps, envs, -1), starts):
            keep = 1 - fresh[:, None]
            hidden, state_of_cell = cell(x, (hidden * keep, state_of_cell * keep))
            stepped.append(hidden)
    assert torch.allclose(recalled, torch.cat(stepped), atol=1e-6)


def test_acting_reads_a_mission_anew_once_an_update_changed_the_reader():
    """Acting keeps each mission's reading while the reader's weights stay as they are; an
    optimizer step changes them in place (the fused Adam the trainer uses bumps no version)."""
    torch.manual_seed(0)
    model = make_student("film", 3, "action", 0)
    obs = _random_obs(4)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1, fused=True)
    with torch.no_grad():
        before = model.read(obs)[1]
    model.read(obs)[1].sum().backward()
    optimizer.step()
    with torch.no_grad():
        after = model.read(obs)[1]
    assert not torch.allclose(before, after) and torch.equal(after, model.read(obs)[1].detach())


@pytest.mark.parametrize("architecture", list(STUDENTS))
def test_the_subgoal_gate_mixes_the_shown_subgoal_with_the_students_own_per_row(architecture):
    """gate 1: the teacher's subgoal is the input; gate 0: the student's own grounding (as alone);
    in between, the mixture; each row as if computed on its own."""
    torch.manual_seed(0)
    model = make_student(architecture, 3, "subgoal")
    n = 4
    obs = {"image": torch.randint(0, 6, (n, 7, 7, 3)), "direction": torch.randint(0, 4, (n,)),
           "mission": torch.randint(0, 5, (n, 8))}
    advice = torch.rand(n, model.advice_dim)
    gate = torch.tensor([1.0, 0.0, 0.5, 0.0])
    mixed, _, _ = model(obs, advice, gate)
    shown, _, _ = model(obs, advice)
    alone, _, _ = model.alone(obs)
    assert torch.allclose(mixed[0], shown[0]) and torch.allclose(mixed[[1, 3]], alone[[1, 3]])
    assert not torch.allclose(mixed[2], shown[2]) and not torch.allclose(mixed[2], alone[2])
    with torch.no_grad():
        own = model.own_subgoal(*model.read(obs))
    half, _, _ = model(obs, 0.5 * advice + 0.5 * own)
    assert torch.allclose(mixed[2], half[2], atol=1e-6)


@pytest.mark.parametrize("architecture", list(STUDENTS))
def test_the_grounding_points_at_the_subgoals_cells_or_at_none(architecture):
    """The grounding loss is one choice among the view's 49 cells and "none" (logit 0): the
    subgoal's cells share the target, an explore subgoal's is none; trained on it, the student's
    own subgoal marks exactly the subgoal's cells (both cells of the object) and nothing for explore."""
    torch.manual_seed(0)
    model = make_student(architecture, 3, "subgoal")
    cell = torch.arange(49)
    image = torch.stack([cell % 11, (cell // 11) % 6, torch.zeros(49, dtype=torch.long)], -1).repeat(3, 1, 1)
    image[:, 30] = image[:, 10]  # one object in two cells, every other cell unlike it
    obs = {"image": image.view(3, 7, 7, 3), "direction": torch.randint(0, 4, (3,)), "mission": torch.randint(0, 5, (3, 8))}
    target = torch.zeros(3, model.advice_dim)
    target[0, [10, 30]] = 1.0  # one object in two cells
    target[1, 44] = 1.0
    target[:2, 49], target[2, 49 + VERBS.index("explore")] = 1.0, 1.0  # go to; explore (no cell)
    target[0, -2:] = torch.tensor([0.25, -0.5])  # where the object lies: an input, not a target
    read = model.read(obs)
    mask_logits, verb_logits = model.grounding(*read)
    choice = torch.cat([mask_logits, torch.zeros(3, 1)], -1)
    aim = torch.cat([target[:, :49], torch.tensor([[0.0], [0.0], [1.0]])], -1)
    expected = (torch.nn.functional.cross_entropy(choice, aim / aim.sum(-1, keepdim=True), reduction="none")
                + torch.nn.functional.cross_entropy(verb_logits, target[:, 49:49 + len(VERBS)], reduction="none"))
    assert torch.allclose(model.distill_loss(read, target, None), expected)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        model.distill_loss(model.read(obs), target, None).mean().backward()
        optimizer.step()
    with torch.no_grad():
        own = model.own_subgoal(*model.read(obs))
    target[0, -2:] = 0.0  # the student cannot say where an object it points at lies: that part stays 0
    assert torch.equal(own, target)


def test_the_film_student_reads_word_order_and_the_mlp_student_does_not():
    missions = ["put the red ball next to the blue key", "put the blue key next to the red ball"]
    words = torch.as_tensor(np.stack([encode_mission(m) for m in missions]))
    obs = {"image": torch.zeros(2, 7, 7, 3, dtype=torch.long), "direction": torch.zeros(2, dtype=torch.long),
           "mission": words}
    torch.manual_seed(0)
    film, mlp = make_student("film", 7, "subgoal"), make_student("mlp", 7, "subgoal")
    with torch.no_grad():
        read = film.read(obs)[1]
        bag = mlp.read(obs)[1]
    assert not torch.allclose(read[0], read[1], atol=1e-4)
    assert torch.allclose(bag[0], bag[1])  # the same words: the same bag


def _small_run(tmp_path, name: str, **values) -> TrainConfig:
    config = TrainConfig(env_id="MiniGrid-Empty-5x5-v0", frames=128, num_envs=4).replace(
        num_steps=32, eval_episodes=2, **values)
    Trainer(config, tmp_path / name, quiet=True).train()
    return config


def test_a_checkpoint_from_before_the_choice_of_student_loads_and_evaluates(tmp_path):
    _small_run(tmp_path, "old", student="mlp", student_memory=0)  # the only student there was
    run = RunDir(tmp_path / "old")
    newest = run.checkpoints()[-1]
    state = torch.load(newest, weights_only=True)
    del state["student_architecture"], state["student_memory"]  # as checkpoints were written before
    del state["config"]["student"], state["config"]["student_memory"]
    torch.save(state, newest)
    config, model = load_student(tmp_path / "old")
    assert config.student == "mlp" and isinstance(model, ActorCritic)
    assert evaluate_student(model, config.env_id, 2, seed=0).episodes == 2
    assert Trainer.resume(tmp_path / "old", frames=256, quiet=True).train()["frames"] == 256


def test_a_student_of_one_architecture_is_not_loaded_into_the_other(tmp_path):
    _small_run(tmp_path, "film", student="film")
    config, model = load_student(tmp_path / "film")
    assert config.student == "film" and model.architecture == "film"
    with pytest.raises(MutualRLError, match="is a 'film' student .* this run needs a 'mlp' student"):
        Trainer(TrainConfig(env_id="MiniGrid-Empty-5x5-v0", frames=128, num_envs=4, student="mlp",
                            student_from=str(tmp_path / "film")), tmp_path / "mlp", quiet=True)
    run = RunDir(tmp_path / "film")
    newest = run.checkpoints()[-1]
    state = torch.load(newest, weights_only=True)
    state["student_architecture"] = "mlp"  # a checkpoint that says one thing and holds another
    torch.save(state, newest)
    with pytest.raises(MutualRLError, match="does not hold a 'mlp' student"):
        load_student(tmp_path / "film")


def test_a_student_with_memory_resumes_with_it_and_is_not_carried_into_one_without(tmp_path):
    _small_run(tmp_path, "memory", student="film", student_memory=8)
    config, model = load_student(tmp_path / "memory")
    assert (config.student, config.student_memory, model.memory_size) == ("film", 8, 8)
    assert evaluate_student(model, config.env_id, 2, seed=0).episodes == 2
    assert Trainer.resume(tmp_path / "memory", frames=256, quiet=True).student.memory_size == 8
    with pytest.raises(MutualRLError, match=r"\(memory 8\) .* this run needs a 'film' student \(memory 0\)"):
        Trainer(TrainConfig(env_id="MiniGrid-Empty-5x5-v0", frames=128, num_envs=4, student="film", student_memory=0,
                            student_from=str(tmp_path / "memory")), tmp_path / "none", quiet=True)


def test_an_unknown_student_is_one_clear_line():
    with pytest.raises(MutualRLError, match="unknown student 'cnn'; allowed: film, mlp"):
        TrainConfig(student="cnn").validate()


def test_a_student_with_memory_needs_a_copy_per_minibatch_and_says_so():
    with pytest.raises(MutualRLError, match="minibatches=2 exceeds num_envs=1: a student with memory learns"):
        TrainConfig(num_envs=1, student_memory=8).validate()
    TrainConfig(num_envs=1, student_memory=0).validate()  # a feed-forward student learns from single steps


@pytest.mark.parametrize("advice", ["action", "subgoal"])
def test_a_student_masking_no_ops_never_takes_one_and_learns_with_finite_losses(advice):
    """Sampled or greedy, alone or advised, it takes only acts its view shows would change something;
    PPO scores the same masked policy (ratio 1 on the first pass) and its losses stay finite, advice
    on a masked act included."""
    torch.manual_seed(0)
    model = make_student("film", 6, advice, memory=8, mask="no-ops")
    with torch.no_grad():
        model.actor.weight.normal_(std=3.0)
    n = 64
    obs = _random_obs(n)
    obs["image"][:, 3, 5, 0] = torch.randint(1, 8, (n,))  # what lies in front: empty, wall, ..., box
    effect = acts_with_effect(obs["image"], 6)
    assert (~effect).any(0)[2:].all()  # every act but the turns is masked somewhere
    dim = model.advice_dim
    advice_input = torch.softmax(torch.randn(n, dim) * 3, -1)
    step = model.act(obs, advice_input, torch.zeros(n, 6), starts=torch.ones(n))
    greedy = model.act(obs, advice_input, torch.zeros(n, 6), starts=torch.ones(n), greedy=True)
    alone, _, _ = model.alone(obs, starts=torch.ones(n))
    for action in (step.action, greedy.action, alone.argmax(-1)):
        assert effect[torch.arange(n), action].all()
    teacher_probs = torch.softmax(torch.randn(n, 6), -1) if advice == "action" else advice_input
    batch = PPOBatch(obs=obs, advice=advice_input, gate=torch.ones(n), advice_logits=torch.zeros(n, 6),
                     teacher_probs=teacher_probs, guidance_weight=torch.ones(n), actions=step.action,
                     logprobs=step.logprob, advantages=torch.randn(n), returns=torch.randn(n), values=step.value,
                     starts=torch.ones(n), memory=model.initial_memory(n))
    stats = ppo_update(model, torch.optim.SGD(model.parameters(), lr=0.0), batch,
                       PPOConfig(update_epochs=1, minibatches=1))
    assert abs(stats["approx_kl"]) < 1e-6
    assert all(np.isfinite(v) for v in stats.values())


def test_the_action_mask_is_kept_with_the_student(tmp_path):
    _small_run(tmp_path, "masked", student="film", action_mask="no-ops")
    config, model = load_student(tmp_path / "masked")
    assert config.action_mask == model.action_mask == "no-ops"
    assert Trainer.resume(tmp_path / "masked", frames=256, quiet=True).student.action_mask == "no-ops"
    _small_run(tmp_path, "plain", student="film", action_mask="none")
    assert load_student(tmp_path / "plain")[1].action_mask == "none"
    newest = RunDir(tmp_path / "plain").checkpoints()[-1]
    state = torch.load(newest, weights_only=True)
    del state["student_action_mask"], state["config"]["action_mask"]  # as checkpoints were written before the mask
    torch.save(state, newest)
    assert load_student(tmp_path / "plain")[1].action_mask == "none"

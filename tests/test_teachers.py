import copy
import logging
import time

import numpy as np
import pytest
import torch

from mutualrl.config import TeacherConfig
from mutualrl.envs import FULL_ACTIONS, NAVIGATION_ACTIONS, Situation
from mutualrl.evaluation import evaluate_teacher
from mutualrl.feedback import PromptFeedback
from mutualrl.teachers import BotTeacher, make_teacher
from mutualrl.teachers.cache import AdviceCache
from mutualrl.teachers.endpoint import EndpointTeacher
from mutualrl.teachers.hf import HFTeacher, improvement_targets, sureness
from mutualrl.teachers.prompt import SYSTEM_PROMPT

from conftest import real_situations
from naive_scoring import naive_logliks
from openai_server import OpenAICompatibleServer


def verdict(situation: Situation, signals: dict[str, float], succeeded: int = 0, finished: int = 0) -> PromptFeedback:
    """A feedback record: each named action taken once with its signal, a uniform student policy."""
    n = len(situation.actions)
    counts = np.array([1.0 if a in signals else 0.0 for a in situation.actions])
    sums = np.array([signals.get(a, 0.0) for a in situation.actions])
    return PromptFeedback(situation, int(counts.sum()) or 1, counts, sums, np.full(n, max(1, counts.sum()) / n),
                          finished, succeeded)


@pytest.fixture
def tiny_gpt2(tiny_models):
    """A causal model without Llama's `layers`/`norm`: scored by the whole-model path."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_models["causal"][1]
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=512)
    return GPT2LMHeadModel(config).eval(), tokenizer


@pytest.mark.parametrize("fixture, lora_layers", [("tiny_causal", 6), ("tiny_causal", 1), ("tiny_seq2seq", 6),
                                                  ("tiny_gpt2", 1)])
def test_prefix_shared_scores_equal_full_sequence_scores(fixture, lora_layers, request, situations_mixed):
    """lora_layers=1 on the 2-layer Llama splits it: a cached frozen trunk plus the top layer
    (exact in float32; bfloat16's reads are compared below)."""
    model, tokenizer = request.getfixturevalue(fixture)
    scorer = HFTeacher(model, tokenizer, config=TeacherConfig(lora_layers=lora_layers, precision="float32")).scorer
    assert scorer.trunk_layers == (1 if (fixture, lora_layers) == ("tiny_causal", 1) else 0)
    with torch.no_grad():
        fast = scorer.logliks(situations_mixed)
        naive = naive_logliks(scorer, situations_mixed)
    assert fast.shape == (4, 6)
    assert torch.allclose(fast, naive, atol=1e-4), (fast - naive).abs().max()
    assert fast.std() > 0  # the scores really differ between actions and situations


def _clozes():
    from mutualrl.grounding import mission_questions

    missions = ("go to the red ball", "put the blue key next to the grey box")
    return [q for m in missions for q in mission_questions(m, FULL_ACTIONS)[:3]]


@pytest.mark.filterwarnings("ignore:fan_in_fan_out:UserWarning")  # peft on GPT-2's Conv1D: it sets it itself
@pytest.mark.parametrize("fixture, lora_layers", [("tiny_causal", 1), ("tiny_causal", 6), ("tiny_gpt2", 1)])
def test_the_choice_among_one_token_answers_equals_the_naive_scorers(fixture, lora_layers, request):
    """Clozes answered by one token each: only those rows of the output layer are computed, and
    the teacher's choice (the softmax over the answers) equals the full-vocabulary reference's,
    both when reading and in the gradient a learning step follows."""
    model, tokenizer = request.getfixturevalue(fixture)
    teacher = HFTeacher(model, tokenizer, config=TeacherConfig(lora_layers=lora_layers, precision="float32"))
    teacher._ensure_adapter()
    torch.manual_seed(1)
    for p in teacher.scorer.model.parameters():  # an adapter that changes the answers
        if p.requires_grad:
            p.data.normal_(0, 0.5)
    by_answers = {}
    for q in _clozes():
        by_answers.setdefault(q.actions, []).append(q)
    assert len(by_answers) == 3 and all(len(teacher.scorer.answer_ids(qs[0])[0]) == 1 for qs in by_answers.values())
    for questions in by_answers.values():
        target = torch.softmax(torch.randn(len(questions), len(questions[0].actions)), -1)
        grads = []
        for score in (teacher.scorer.logliks, lambda qs: naive_logliks(teacher.scorer, qs)):
            teacher.scorer.forget_adapted_headers()
            teacher.optimizer.zero_grad()
            choice = torch.log_softmax(score(questions), -1)
            (-(target * choice).sum()).backward()
            grads.append((choice.detach(), [p.grad.clone() for p in teacher.scorer.model.parameters() if p.requires_grad]))
        (fast, fast_grads), (naive, naive_grads) = grads
        assert torch.allclose(fast, naive, atol=1e-5) and naive.std() > 0.01
        # float32 sums in another order: equal up to a small fraction of each gradient's scale
        assert all((f - n).abs().max() <= 1e-3 * n.abs().max() + 1e-5 for f, n in zip(fast_grads, naive_grads))
        assert any(n.abs().max() > 1e-4 for n in naive_grads)


def test_the_adapted_top_layer_runs_its_mlp_at_each_prompts_last_token_only(tiny_causal):
    """With the adapter on the last layer alone, the other tokens are read there only through
    their keys and values (the equality with the reference is the test above)."""
    model, tokenizer = tiny_causal
    teacher = HFTeacher(model, tokenizer, config=TeacherConfig(lora_layers=1, precision="float32"))
    rows = []
    top = teacher.scorer.model.get_decoder().layers[-1].mlp
    top.register_forward_hook(lambda _module, args, _out: rows.append(args[0].shape[:-1].numel()))
    questions = _clozes()
    teacher.score_each(questions)
    assert teacher.scorer.tokens_processed > 10 * len(questions) and sum(rows) == len(questions)


@pytest.mark.parametrize("lora_layers", [1, 6])
def test_clozes_with_different_answers_read_at_once_equal_the_naive_scorers(tiny_causal, lora_layers):
    """Every cloze of two missions (verb, colours, kinds, and the verb the other way round, whose
    one answer is the mission: several answer sets) read in one call, their headers, leads and the
    trunk's first pass shared, scores as the reference does per answer set."""
    from mutualrl.grounding import mission_questions

    model, tokenizer = tiny_causal
    teacher = HFTeacher(model, tokenizer, config=TeacherConfig(lora_layers=lora_layers, precision="float32"))
    questions = [q for m in ("go to the red ball", "put the blue key next to the grey box")
                 for q in mission_questions(m, FULL_ACTIONS)]
    assert len({q.actions for q in questions}) == 5
    fast = teacher.score_each(questions)
    fast_tokens, teacher.scorer.tokens_processed = teacher.scorer.tokens_processed, 0
    for q, row in zip(questions, fast):
        naive = naive_logliks(teacher.scorer, [q])[0]
        if len(q.actions) == 1:  # one answer: its log-likelihood itself
            assert np.allclose(row, naive.numpy(), atol=1e-4)
        else:
            assert np.allclose(torch.log_softmax(torch.tensor(row), -1), torch.log_softmax(naive, -1), atol=1e-5)
    assert np.std(np.concatenate(fast)) > 0
    # every shared token once, not once per answer (the one-answer clozes read the other way round
    # share only their headers' start: a fifth of the naive reads rather than a tenth) ...
    assert fast_tokens * 5 < teacher.scorer.tokens_processed
    # ... and the clozes of several answers alone, a tenth
    several = [q for q in questions if len(q.actions) > 1]
    reader = HFTeacher(model, tokenizer, config=TeacherConfig(lora_layers=lora_layers, precision="float32"))
    reader.score_each(several)
    shared, reader.scorer.tokens_processed = reader.scorer.tokens_processed, 0
    for q in several:
        naive_logliks(reader.scorer, [q])
    assert shared * 10 < reader.scorer.tokens_processed


def test_one_prompt_read_with_different_long_answers_scores_each_answer_set_as_the_naive_scorer(tiny_causal):
    """The same prompt offering other answers of several tokens (a mission as a cloze's answer) is
    read anew, not from the trunk's states cached for the first answers."""
    model, tokenizer = tiny_causal
    teacher = HFTeacher(model, tokenizer, config=TeacherConfig(lora_layers=1, precision="float32"))
    asked = [Situation("pick up the object", "The mission is to", (answer,), question="Say it in other words.",
                       cloze=True) for answer in ("fetch the red ball.", "head for the green key on your left.")]
    for situation in asked:
        fast = teacher.score_each([situation])[0]
        assert np.allclose(fast, naive_logliks(teacher.scorer, [situation])[0].numpy(), atol=1e-4)


def test_a_bfloat16_teacher_reads_as_the_float32_one_and_learns_in_float32(tiny_models):
    """Frozen weights in bfloat16 (`auto` where the CPU multiplies it natively): the answers stay
    within rounding of float32's, come out as float32, and the adapter learns in float32."""
    model, tokenizer = tiny_models["causal"]
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", s) for s in (0, 1, 2)])
    teachers = {precision: HFTeacher(copy.deepcopy(model), tokenizer, config=TeacherConfig(
        update_steps=5, lr=1e-2, kl_coef=0.0, precision=precision)) for precision in ("float32", "bfloat16")}
    with torch.no_grad():
        reads = {precision: torch.log_softmax(t.scorer.logliks(sits), -1) for precision, t in teachers.items()}
    learner = teachers["bfloat16"]
    assert {p.dtype for p in learner.scorer.model.parameters()} == {torch.bfloat16}
    assert reads["bfloat16"].dtype == torch.float32
    assert torch.allclose(reads["bfloat16"], reads["float32"], atol=0.02) and reads["float32"].std() > 0.01
    learner.learn([verdict(s, {"turn left": +1.0, "go forward": -1.0}) for s in sits])
    assert {p.dtype for p in learner.scorer.model.parameters() if p.requires_grad} == {torch.float32}
    with torch.no_grad():
        after = torch.log_softmax(learner.scorer.logliks(sits), -1)
    left, forward = NAVIGATION_ACTIONS.index("turn left"), NAVIGATION_ACTIONS.index("go forward")
    assert (after[:, left] > reads["bfloat16"][:, left]).all() and (after[:, forward] < reads["bfloat16"][:, forward]).all()


def test_auto_precision_is_bfloat16_only_where_the_device_multiplies_it_natively(monkeypatch):
    from mutualrl.teachers.models import weight_dtype

    cpu = torch.device("cpu")
    for native in (False, True):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert weight_dtype("auto", cpu) == (torch.bfloat16 if native else torch.float32)
    assert weight_dtype("float32", cpu) == torch.float32 and weight_dtype("bfloat16", cpu) == torch.bfloat16


def test_prefix_sharing_processes_fewer_tokens(tiny_causal):
    scorer = HFTeacher(*tiny_causal).scorer
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", s) for s in range(8)])
    with torch.no_grad():
        scorer.tokens_processed = 0
        scorer.logliks(sits)
        fast = scorer.tokens_processed
        scorer.tokens_processed = 0
        naive_logliks(scorer, sits)
        naive = scorer.tokens_processed
    assert fast * 3 < naive


def test_advice_cache_never_serves_a_stale_version():
    cache = AdviceCache()
    cache.put(0, "p", np.array([1.0, 2.0]))
    assert cache.get(0, "p") is not None and cache.get(1, "p") is None
    assert (cache.hits, cache.misses) == (1, 1)
    cache.drop_versions_below(1)
    assert len(cache) == 0


def fresh_tiny():
    """A model of its own: learning wraps the model with an adapter in place."""
    from mutualrl.teachers.models import tiny_model

    return tiny_model("causal", seed=0)


def test_cached_advice_is_shared_read_only_and_recalled_alike():
    teacher = HFTeacher(*fresh_tiny(), config=TeacherConfig())
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", 0)])
    first, again = teacher.advise(sits)[0], teacher.advise(sits)[0]
    np.testing.assert_allclose(first.probs.sum(), 1.0, rtol=1e-6)
    assert again.probs is first.probs and teacher.calls == 1
    with pytest.raises(ValueError):  # one caller cannot change what the next is served
        first.probs[0] = 1.0
    np.testing.assert_array_equal(teacher.recall(sits)[0].probs, first.probs)


@pytest.mark.parametrize("refresh", [False, True])
def test_teacher_cache_hits_and_refreshes_after_learning(refresh):
    teacher = HFTeacher(*fresh_tiny(), config=TeacherConfig(update_steps=2, lr=5e-2))
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", 0), ("BabyAI-GoToRedBallNoDists-v0", 3)])
    first = teacher.advise(sits)
    teacher.advise(sits)
    assert teacher.calls == 2 and teacher.cache.hits == 2
    stats = teacher.learn([verdict(sits[0], {"turn right": 1.0, "go forward": -1.0})], refresh=refresh)
    assert teacher.version == 1 and (stats["time_reading"] > 0) == refresh
    # with refresh the teacher re-read its feedback's prompt itself, at the new version
    assert teacher.calls == (3 if refresh else 2)
    second = teacher.advise(sits)
    assert teacher.calls == 4  # both re-scored by the new version, none served from an old version's cache
    assert not np.allclose(first[0].probs, second[0].probs)


@pytest.mark.parametrize("lora_layers", [1, 2])
def test_feedback_update_moves_loglikelihoods_with_the_advantage(lora_layers):
    config = TeacherConfig(update_steps=5, lr=1e-2, kl_coef=0.0, lora_layers=lora_layers, precision="float32")
    teacher = HFTeacher(*fresh_tiny(), config=config)
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", s) for s in (0, 1, 2)])
    with torch.no_grad():
        before = torch.log_softmax(teacher.scorer.logliks(sits), -1)
    stats = teacher.learn([verdict(s, {"turn left": +1.0, "go forward": -1.0}) for s in sits])
    with torch.no_grad():
        after = torch.log_softmax(teacher.scorer.logliks(sits), -1)
    left, forward = NAVIGATION_ACTIONS.index("turn left"), NAVIGATION_ACTIONS.index("go forward")
    assert (after[:, left] > before[:, left]).all()
    assert (after[:, forward] < before[:, forward]).all()
    assert stats["teacher_feedback_prompts"] == 3
    with torch.no_grad():  # with the adapter (and a cached trunk) the fast path still equals the reference
        assert torch.allclose(teacher.scorer.logliks(sits), naive_logliks(teacher.scorer, sits), atol=1e-4)
    # the adapter is saved and restored with the teacher
    restored = HFTeacher(*fresh_tiny(), config=TeacherConfig(lora_layers=lora_layers, precision="float32"))
    restored.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        assert torch.allclose(torch.log_softmax(restored.scorer.logliks(sits), -1), after, atol=1e-5)


def test_sureness_is_one_for_a_certain_answer_and_zero_for_a_coin_toss():
    rows = torch.log(torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.05, 0.05], [0.6, 0.2, 0.2], [1 / 3, 1 / 3, 1 / 3]]))
    sure = sureness(rows)
    assert sure[0] == pytest.approx(1.0) and sure[3] == pytest.approx(0.0, abs=1e-6)
    assert sure[0] > sure[1] > sure[2] > sure[3]


def test_a_hold_by_sureness_frees_what_the_untaught_model_guesses():
    """A tiny random model guesses (its answers near uniform): held firmly on every prompt alike,
    feedback barely moves it; held by its sureness, the same feedback moves it as if unheld."""
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", s) for s in (0, 1)])
    left = NAVIGATION_ACTIONS.index("turn left")
    moved = {}
    for hold, kl_coef in (("fixed", 50.0), ("sureness", 50.0), ("fixed", 0.0)):
        config = TeacherConfig(update_steps=5, lr=1e-2, kl_coef=kl_coef, hold=hold, precision="float32")
        teacher = HFTeacher(*fresh_tiny(), config=config)
        with torch.no_grad():
            before = torch.log_softmax(teacher.scorer.logliks(sits), -1)
            assert sureness(before).max() < 0.05
        teacher.learn([verdict(s, {"turn left": +1.0, "go forward": -1.0}) for s in sits])
        with torch.no_grad():
            moved[hold, kl_coef] = float((torch.log_softmax(teacher.scorer.logliks(sits), -1) - before)[:, left].mean())
    assert moved["sureness", 50.0] > 2 * moved["fixed", 50.0]
    assert moved["sureness", 50.0] == pytest.approx(moved["fixed", 0.0], rel=0.2)


def test_each_answer_is_judged_against_the_other_answers_of_its_own_prompt():
    """A cloze whose taken answers did equally well keeps its policy whatever other prompts found
    (hindsight's rewarding acts beside it); within a prompt the better answer gains and the worse
    loses; a shift of every signal (a critic lagging the student) and an answer taken alone
    move nothing."""
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", s) for s in (0, 1, 2)])
    n = len(sits[0].actions)
    policy = np.linspace(1.0, 2.0, n) / np.linspace(1.0, 2.0, n).sum()

    def record(sit, counts, sums):
        pad = np.zeros(n - len(counts))
        return PromptFeedback(sit, int(sum(counts)), np.r_[counts, pad], np.r_[sums, pad], sum(counts) * policy, 0, 0)

    feedback = [record(sits[0], [12.0, 8.0], [0.0, 0.0]), record(sits[1], [1.0, 1.0], [0.5, -0.1]),
                record(sits[2], [3.0], [0.9])]
    even, contrast, alone = improvement_targets(feedback)
    assert np.allclose(even, policy) and np.allclose(alone, policy)
    assert contrast[0] > policy[0] and contrast[1] < policy[1]
    assert np.allclose(contrast[2:] / policy[2:], contrast[2] / policy[2])  # untaken answers keep their odds
    shifted = [record(s, list(f.counts[f.counts > 0]), list(f.signal_sum[f.counts > 0] + 0.3 * f.counts[f.counts > 0]))
               for s, f in zip(sits, feedback)]
    assert all(np.allclose(x, y) for x, y in zip(improvement_targets(shifted), [even, contrast, alone]))


def test_an_answer_judged_better_can_come_back_from_a_collapse():
    """A right answer knocked to near 0 by other prompts' updates is lifted by its verdicts (1 for
    it, 0 for the others); an answer that did worse stays where it was, however unlikely."""
    sit = real_situations([("BabyAI-GoToRedBallNoDists-v0", 0)])[0]
    n = len(sit.actions)
    right, worse = 0, 1
    policy = np.full(n, (1.0 - 2e-4) / (n - 2))
    policy[[right, worse]] = 1e-4
    counts, sums = np.ones(n), np.zeros(n)
    sums[right], sums[worse] = 1.0, -1.0
    target = improvement_targets([PromptFeedback(sit, n, counts, sums, n * policy, 0, 0)])[0]
    assert target[right] > 0.02  # over 200 times its probability (by its gain alone, 3.4 times)
    assert target[worse] <= policy[worse]


def test_expert_teacher_agrees_with_the_bot_and_solves_the_task():
    result = evaluate_teacher(BotTeacher(), "BabyAI-GoToRedBallNoDists-v0", episodes=10, seed=0)
    assert result.success_rate == 1.0
    assert result.advice_accuracy == 1.0
    assert result.mean_length < 10


def test_expert_teacher_soft_distribution():
    import gymnasium as gym

    sit = real_situations([("BabyAI-GoToRedBallNoDists-v0", 0)])[0]
    env = gym.make("BabyAI-GoToRedBallNoDists-v0")
    env.reset(seed=0)
    probs = BotTeacher(smoothing=0.2).advise([sit], envs=[env.unwrapped])[0].probs
    assert probs.sum() == pytest.approx(1.0) and probs.max() == pytest.approx(0.8)
    with pytest.raises(ValueError, match="live environments"):  # no environment, no plan
        BotTeacher().advise([sit])


def test_the_bot_teacher_plans_on_after_the_agent_opens_a_box():
    """With all seven actions a student may open a box, which the BabyAI bot itself refuses to plan past."""
    import gymnasium as gym
    from minigrid.core.world_object import Box

    env = gym.make("BabyAI-GoToRedBall-v0").unwrapped
    env.reset(seed=0)
    env.grid.set(*env.front_pos, Box("yellow"))
    bot = BotTeacher()
    bot.observe([env], [None])
    env.step(env.actions.toggle)  # the box opens and disappears
    assert bot.observe([env], ["toggle"])[0] in FULL_ACTIONS


def test_the_bot_teacher_plans_on_after_the_agent_picks_up_what_the_plan_did_not_expect():
    """The bot asserts that its agent's hands are empty before it picks up; a student may already hold something."""
    import gymnasium as gym

    env = gym.make("BabyAI-PickupLoc-v0").unwrapped
    env.reset(seed=0)
    bot, last = BotTeacher(), None
    while (last := bot.observe([env], [last])[0]) != "pick up":  # the bot walks to its object
        env.step(FULL_ACTIONS.index(last))
    env.carrying = env.grid.get(*env.front_pos)  # the student picked it up in the bot's stead ...
    env.grid.set(*env.front_pos, None)
    last = "turn left"  # ... and turned away; the bot turns back, to pick up with full hands
    for _ in range(3):
        env.step(FULL_ACTIONS.index(last))
        last = bot.observe([env], [last])[0]
        assert last in FULL_ACTIONS


def test_tiny_teacher_runs_alone_through_make_teacher():
    teacher = make_teacher("tiny")
    result = evaluate_teacher(teacher, "BabyAI-GoToRedBallNoDists-v0", episodes=2, seed=0)
    assert result.episodes == 2 and 0.0 <= result.advice_accuracy <= 1.0


# ------------------------------------------------------------------------ endpoint


def test_endpoint_logprob_scores_equal_the_model_on_the_server(tiny_causal):
    model, tokenizer = tiny_causal
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", 0), ("BabyAI-GoToRedBallNoDists-v0", 2)])
    with OpenAICompatibleServer(model, tokenizer) as server:
        teacher = EndpointTeacher(server.url, timeout=5)
        scores = teacher.score(sits)
        assert teacher.method == "batch" and server.requests == 1
    for s, row in zip(sits, scores):
        prefix = f"{SYSTEM_PROMPT}\n{teacher.user_message(s)}\nAnswer: "
        for action, value in zip(s.actions, row):
            ids = tokenizer(prefix + action, add_special_tokens=False).input_ids
            n_prefix = len(tokenizer(prefix, add_special_tokens=False).input_ids)
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
            expected = sum(logp[t - 1, ids[t]].item() for t in range(n_prefix, len(ids)))
            assert value == pytest.approx(expected, abs=1e-4)


def test_endpoint_falls_back_to_votes(tiny_causal):
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", 0)])
    with OpenAICompatibleServer(*tiny_causal, chat_answers=["turn right", "Turn right.", "go forward", "turn right"]) as server:
        server.behaviour = "no_logprobs"
        teacher = EndpointTeacher(server.url, samples=8, timeout=5)
        advice = teacher.advise(sits)[0]
    assert teacher.method == "votes" and advice.available
    assert np.argmax(advice.probs) == NAVIGATION_ACTIONS.index("turn right")
    assert advice.probs[NAVIGATION_ACTIONS.index("go forward")] > advice.probs[NAVIGATION_ACTIONS.index("turn left")]


@pytest.mark.parametrize("behaviour, requests", [("slow", 1), ("error", 1), ("malformed", 3)])
def test_endpoint_degrades_without_crash_or_hang(behaviour, requests, tiny_causal, caplog):
    """No answer within the full bound: down at once. An error answer: refused, never asked again.
    A reply cut short: tried again (twice), then down. Then the cooldown: no request at all."""
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", 0), ("BabyAI-GoToRedBallNoDists-v0", 1)])
    with OpenAICompatibleServer(*tiny_causal) as server:
        server.behaviour = behaviour
        teacher = EndpointTeacher(server.url, timeout=0.3, retries=2, backoff=0.05, cooldown=60, method="batch")
        start = time.monotonic()
        with caplog.at_level(logging.WARNING):
            first = teacher.advise(sits)
            second = teacher.advise(sits)  # within the cooldown: answered at once, no request
        elapsed = time.monotonic() - start
        sent = server.requests
    assert all(not a.available and np.allclose(a.probs, 1 / 3) for a in first + second)
    stats = teacher.stats()
    assert stats["teacher_failures"] == 4 and stats["teacher_unadvised"] == 4
    assert "server down" in stats["teacher_unadvised_reason"]
    assert sent == requests
    assert elapsed < 5
    assert sum("unavailable" in r.message for r in caplog.records) == 1


def test_a_slow_server_is_waited_for_not_declared_down(tiny_causal, caplog, monkeypatch):
    """llama.cpp's server on a small CPU: seconds per request, one at a time, lists refused. With
    four requests in flight the last would wait past the bound; the teacher measures the first
    request, sends the others so that none waits past it, and advises."""
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", 0)])
    with OpenAICompatibleServer(*tiny_causal) as server:
        server.behaviour, server.delay, server.serial = "no_lists", 2.0, True
        teacher = EndpointTeacher(server.url, timeout=5, retries=0, max_in_flight=4)
        monkeypatch.setattr("mutualrl.teachers.endpoint.SLOW_AFTER", 1.0)  # say so after 1 s of waiting, not 10
        with caplog.at_level(logging.INFO, logger="mutualrl"):
            advice = teacher.advise(sits)
        lists, singles = server.list_requests, server.requests - server.list_requests
    stats = teacher.stats(frames=64)
    assert advice[0].available and teacher.method == "single"
    assert (lists, singles) == (1, 3)
    assert stats["teacher_failures"] == 0 and stats["teacher_unadvised"] == 0
    assert 2.0 <= stats["teacher_latency_s"] < 5 and stats["teacher_requests"] == 3
    assert stats["teacher_wait_per_1024_frames"] >= 16 * 8.0  # 8 s of waiting over 64 frames
    assert not any("unavailable" in r.message for r in caplog.records)
    assert sum("s per prompt measured" in r.getMessage() for r in caplog.records) == 1
    assert sum("sets this run's pace" in r.getMessage() and "--teacher-budget" in r.getMessage()
               for r in caplog.records) == 1


def test_endpoint_learns_through_its_prompt(tiny_causal):
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", 0)])
    with OpenAICompatibleServer(*tiny_causal) as server:
        teacher = EndpointTeacher(server.url, timeout=5)
        before = teacher.advise(sits)[0].probs
        teacher.learn([verdict(sits[0], {"turn left": 2.0, "go forward": -1.0}, succeeded=3, finished=4)], refresh=True)
        requests = server.requests
        after = teacher.advise(sits)[0].probs
        assert server.requests == requests  # refreshed at learning time: the new prompt is already cached
    message = teacher.user_message(sits[0])
    assert teacher.version == 1
    assert "'turn left' helped" in message and "'go forward' hurt" in message
    assert "succeeded 3 of 4 times" in message
    assert not np.allclose(before, after)  # the server scored the new prompt, memory included


def test_endpoint_keeps_logprob_scoring_on_a_server_that_refuses_lists(tiny_causal, caplog):
    """llama.cpp's server answers HTTP 500 to a list of prompts: one prompt per request instead."""
    model, tokenizer = tiny_causal
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", 0), ("BabyAI-GoToRedBallNoDists-v0", 2)])
    with OpenAICompatibleServer(model, tokenizer) as reference:
        expected = EndpointTeacher(reference.url, timeout=5).score(sits)
    with OpenAICompatibleServer(model, tokenizer) as server:
        server.behaviour = "no_lists"
        teacher = EndpointTeacher(server.url, timeout=5, retries=0, max_in_flight=3)
        with caplog.at_level(logging.INFO, logger="mutualrl"):
            scores = teacher.score(sits)
            teacher.score(sits)
        assert server.chat_requests == 0  # never fell back to votes
        assert server.list_requests == 1  # the refusal was not asked again
        assert 2 <= server.max_concurrent <= 3  # in flight together, and never more than allowed
    assert teacher.method == "single" and teacher.stats()["teacher_scoring"] == "single"
    assert np.allclose(scores, expected, atol=1e-5)
    assert sum("one prompt per request" in r.message for r in caplog.records) == 1  # said once


def test_endpoint_that_is_down_does_not_give_up_log_probabilities(tiny_causal):
    """An unreachable server is not a server without log-probabilities: the probe waits for it."""
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", 0)])
    teacher = EndpointTeacher("http://127.0.0.1:9/v1", timeout=0.2, retries=0, cooldown=0)
    assert not teacher.advise(sits)[0].available
    assert teacher.method == "auto"


def test_a_run_goes_on_while_its_server_is_down_and_is_advised_again_when_it_returns(tiny_causal, tmp_path, monkeypatch):
    """The server stops after the first iteration and comes back on the same port after the third."""
    from mutualrl.config import TrainConfig
    from mutualrl.loop import Trainer

    servers = [OpenAICompatibleServer(*tiny_causal).__enter__()]
    port = int(servers[0].url.rsplit(":", 1)[1].split("/")[0])
    config = TrainConfig(mode="guided", frames=4 * 32, num_envs=2, teacher=TeacherConfig(
        name=f"endpoint:{servers[0].url}", endpoint_cooldown=0.0, endpoint_retries=0)).replace(
        num_steps=16, eval_every=0, eval_episodes=1)
    trainer = Trainer(config, tmp_path, quiet=True)
    iterate = Trainer.iterate

    def with_outage(self):
        if self.iteration == 1:
            servers[0].__exit__()
        if self.iteration == 3:
            servers.append(OpenAICompatibleServer(*tiny_causal, port=port).__enter__())
        return iterate(self)

    monkeypatch.setattr(Trainer, "iterate", with_outage)
    try:
        trainer.train()
    finally:
        servers[-1].__exit__()
    rows = trainer.run.read_metrics()
    assert len(rows) == 4
    assert rows[0]["advised_fraction"] > 0 and rows[0]["teacher_unadvised"] == 0
    for row in rows[1:3]:  # down: states new to the teacher go without advice, and the reason is recorded
        assert row["teacher_unadvised"] > 0 and "server down" in row["teacher_unadvised_reason"]
    assert rows[3]["teacher_unadvised"] == 0 and rows[3]["teacher_requests"] > 0  # advised again
    assert all(r["teacher_scoring"] == "batch" and "teacher_latency_s" in r for r in rows)


def test_a_server_slower_than_measured_is_waited_for_with_the_full_bound(tiny_causal, monkeypatch):
    """Past its measured timeout a request is sent again with the full bound, and that spends no
    retry: with none allowed, the teacher still advises."""
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", 0)])
    monkeypatch.setattr("mutualrl.teachers.endpoint.MIN_TIMEOUT", 0.2)  # measured timeouts that a test can outlive
    with OpenAICompatibleServer(*tiny_causal) as server:
        teacher = EndpointTeacher(server.url, timeout=30, retries=0, method="batch", max_in_flight=1)
        assert teacher.advise(sits[:1])[0].available
        measured = teacher._timeout(3)  # from the fast first answer, well under the full bound
        assert measured < 10
        server.delay = measured + 0.5  # now slower than that, within the bound
        sent = server.requests
        advice = teacher.advise(real_situations([("BabyAI-GoToRedBallNoDists-v0", 1)]))
        resent = server.requests - sent
    assert advice[0].available and teacher.stats()["teacher_failures"] == 0
    assert resent == 2  # cut off at the measured timeout, then answered within the full bound


def test_a_colour_clozes_update_keeps_the_untaught_models_shares_of_colours_and_kinds():
    """Records from a teacher whose answers had drifted to the kinds (0.95: the mission read as
    naming no colour): the update moves answers within the colours as the feedback says, and keeps
    the kinds' share where the untaught model reads it, not where the drifted records put it."""
    from mutualrl.envs import task_actions
    from mutualrl.grounding import COLOURS, mission_questions

    teacher = HFTeacher(*fresh_tiny(), config=TeacherConfig(update_steps=20, lr=1e-2, kl_coef=0.0, precision="float32"))
    cloze = mission_questions("go to the red ball", task_actions("BabyAI-GoToLocal-v0"))[0]
    n, red, blue = len(COLOURS), cloze.actions.index("red"), cloze.actions.index("blue")
    with torch.no_grad():
        untaught = torch.softmax(teacher.scorer.logliks([cloze]), -1)[0].numpy()
    drifted = np.full(len(cloze.actions), 0.05 / n)
    drifted[n:] = 0.95 / (len(cloze.actions) - n)
    counts = np.zeros(len(cloze.actions))
    counts[[red, blue]] = 4
    signal = np.where(np.arange(len(cloze.actions)) == red, 1.0, -1.0) * counts  # red did better than blue
    teacher.learn([PromptFeedback(cloze, 8, counts, signal, drifted * 8, 0, 0)])
    with torch.no_grad():
        after = torch.softmax(teacher.scorer.logliks([cloze]), -1)[0].numpy()
    assert after[red] / after[blue] > untaught[red] / untaught[blue]
    assert abs(after[n:].sum() - untaught[n:].sum()) < 0.05 < 0.95 - after[n:].sum()


def test_an_untaught_question_is_read_by_the_original_model_once_for_the_run():
    """A question feedback never judges (the mission read the other way round) keeps the untaught
    model's answer: after the adapter has learnt, the adapted model reads it otherwise, while the
    teacher advises what it read before, without a new call, and a question first asked then as
    the original model reads it."""
    from mutualrl import channel

    config = TeacherConfig(update_steps=5, lr=1e-2, kl_coef=0.0, lora_layers=1, precision="float32")
    teacher, original = HFTeacher(*fresh_tiny(), config=config), HFTeacher(*fresh_tiny(), config=config)
    first, later = channel.clozes("fetch the red ball", ("go", "pick"))
    assert first.untaught and later.untaught
    before = teacher.advise([first])[0].probs
    sits = real_situations([("BabyAI-GoToRedBallNoDists-v0", s) for s in (0, 1, 2)])
    teacher.learn([verdict(s, {"turn left": +1.0, "go forward": -1.0}) for s in sits])
    calls, adapted = teacher.calls, teacher.score_each([first])[0]
    assert np.allclose(np.log(teacher.advise([first])[0].probs), np.log(before)) and teacher.calls == calls
    assert not np.allclose(adapted, np.log(before), atol=1e-3)  # (a likelihood: compared as its log)
    assert np.allclose(np.log(teacher.advise([later])[0].probs), np.log(original.advise([later])[0].probs), atol=1e-4)


def test_a_teacher_learns_the_same_twice_on_two_threads(tiny_causal):
    """`seed_everything` turns torch's deterministic kernels on (the runs' default): then one
    update from the same state and feedback gives the same adapter bit for bit on two CPU threads.
    With them off (`seed_everything(1, False)`) the adapters differ by about 1e-8."""
    from mutualrl.grounding import mission_questions
    from mutualrl.loop import seed_everything

    model, tokenizer = tiny_causal
    questions = [q for m in ("go to the red ball", "put the blue key next to the grey box")
                 for q in mission_questions(m, FULL_ACTIONS)]
    rng = np.random.default_rng(0)
    feedback = [verdict(q, dict(zip(q.actions, rng.normal(size=len(q.actions))))) for q in questions]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        adapters = []
        for _ in range(3):
            seed_everything(1)
            teacher = HFTeacher(copy.deepcopy(model), tokenizer, config=TeacherConfig(precision="float32"))
            teacher.learn(feedback)
            adapters.append(teacher.state_dict()["adapter"])
    finally:
        torch.set_num_threads(threads)
    assert adapters[0] and all(a.keys() == adapters[0].keys() for a in adapters)
    assert any(v.abs().sum() > 0 for k, v in adapters[0].items() if "lora_B" in k)  # it learnt
    for adapter in adapters[1:]:
        assert all(torch.equal(adapter[k], adapters[0][k]) for k in adapter)

"""The cooperative loop: rollout -> advise -> act -> update the student -> feedback -> update the teacher.

Modes: `rl` (student alone), `guided` (teacher -> student), `feedback` (student -> teacher),
`mutual` (both). Each step below is one call into the module that owns it.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mutualrl.config import TrainConfig
from mutualrl.envs import ACTION_TEXTS, Situation, make_env, situations, task_actions
from mutualrl.errors import MutualRLError
from mutualrl.evaluation import evaluate_student, evaluate_teacher
from mutualrl.feedback import TrustTable, collect_feedback, episode_outcomes
from mutualrl.student import ActorCritic, PPOBatch, compute_gae, obs_to_tensors, ppo_update
from mutualrl.teachers import Teacher, make_teacher
from mutualrl.teachers.text import question
from mutualrl.tracking import MetricsLogger, RunDir

#: advice probabilities are floored here before their log enters the student's logits
ADVICE_FLOOR = 1e-3
#: the metrics key of the student's held-out success without advice
ALONE = "student_eval_success_rate"
TIMERS = ("time_env", "time_teacher", "time_student", "time_student_update", "time_teacher_update", "time_eval")


@dataclass
class Rollout:
    """One iteration's experience, shaped (steps, envs, ...)."""

    obs: dict[str, torch.Tensor]
    advice_shown: torch.Tensor
    advice_logits: torch.Tensor
    teacher_probs: torch.Tensor
    advised: torch.Tensor
    trust: torch.Tensor  # (steps, envs) the student's trust in each step's advice when it acted
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    successes: np.ndarray
    next_value: torch.Tensor
    situations: list[list[Situation]] | None
    keys: list[str]  # each step's prompt, flattened (steps * envs), where the teacher guides


class Trainer:
    """Trains one run; `Trainer(config, out).train()` or `Trainer.resume(out).train()`."""

    def __init__(self, config: TrainConfig, out: str | Path, *, teacher: Teacher | None = None,
                 quiet: bool = False, _checkpoint: dict[str, Any] | None = None):
        self.config = config.validate()
        self.run = RunDir(out)
        if _checkpoint is None and self.run.checkpoints():
            raise MutualRLError(f"{str(self.run.path)!r} already holds a run; use --resume or another --out")
        self.console = Console(stderr=True, quiet=quiet)
        self.quiet = quiet
        self.device = torch.device(config.device)
        if config.device == "cuda" and not torch.cuda.is_available():
            raise MutualRLError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
        self.actions = task_actions(config.env_id)
        assert self.actions == ACTION_TEXTS[: len(self.actions)]  # task action i is MiniGrid action i
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.model = ActorCritic(len(self.actions)).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate, eps=1e-5)
        self.teacher = teacher
        if self.teacher is None and config.uses_teacher:
            self.teacher = make_teacher(
                config.teacher, device=config.device, seed=config.seed, lora_rank=config.lora_rank,
                lora_layers=config.lora_layers, learning_rate=config.teacher_lr, kl_coef=config.teacher_kl,
                update_steps=config.teacher_update_steps, batch_size=config.teacher_batch,
            )
        if config.teacher_learns and self.teacher is not None and not self.teacher.learns:
            raise MutualRLError(f"mode {config.mode!r} needs a teacher that learns; {config.teacher!r} is fixed")
        self.trust = TrustTable()
        self.iteration, self.frames, self.wall_time = 0, 0, 0.0
        self.episode_success: deque[float] = deque(maxlen=100)
        self.episode_return: deque[float] = deque(maxlen=100)
        self.episode_length: deque[float] = deque(maxlen=100)
        self.pending_feedback: list[tuple] = []
        self.summary: dict[str, Any] = {}
        if _checkpoint is not None:
            self._restore(_checkpoint)
        else:
            if config.teacher_from:
                self._adopt_teacher(config.teacher_from)
            self.run.write_config(config)
        reset_seed = int(np.random.SeedSequence([config.seed, self.iteration]).generate_state(1)[0] % 500_000)
        self.envs = make_env(config.env_id, config.num_envs, reset_seed)
        self.obs, _ = self.envs.reset(seed=reset_seed)
        self.last_actions: list[str | None] = [None] * config.num_envs
        self.running_return = np.zeros(config.num_envs)
        self.running_length = np.zeros(config.num_envs, dtype=int)

    @classmethod
    def resume(cls, out: str | Path, *, frames: int | None = None, teacher: Teacher | None = None,
               quiet: bool = False) -> "Trainer":
        """Continue the run in `out` from its newest checkpoint (optionally to a new frame budget)."""
        run = RunDir(out).require()
        checkpoint = run.load_checkpoint()
        config = TrainConfig.from_dict(checkpoint["config"])
        if frames is not None:
            config.frames = frames
            run.write_config(config)
        return cls(config, out, teacher=teacher, quiet=quiet, _checkpoint=checkpoint)

    # ------------------------------------------------------------------ the loop

    def train(self) -> dict[str, Any]:
        cfg = self.config
        logger = MetricsLogger(self.run, purge_step=self.frames if self.iteration else None)
        if self.iteration == 0:
            self.summary = self._evaluate_all("before")
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} frames"),
                            TextColumn("{task.fields[fps]:>5.0f} fps"), TextColumn("success {task.fields[success]:.2f}"),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, disable=self.quiet)
        try:
            with progress:
                task = progress.add_task(f"{cfg.mode} {cfg.env_id}", total=cfg.frames, completed=self.frames, fps=0, success=0)
                while self.frames < cfg.frames:
                    row = self.iterate()
                    logger.log(row)
                    progress.update(task, completed=self.frames, fps=row["fps"], success=row["success_rate"])
                    if self.iteration % cfg.checkpoint_every == 0 or self.frames >= cfg.frames:
                        self.save()
        finally:
            logger.close()
            self.envs.close()
        self.summary.update(self._evaluate_all("after"))
        rows = self.run.read_metrics()
        self.summary.update(frames=self.frames, iterations=self.iteration, wall_time=self.wall_time,
                            frames_to_0_9=frames_to_success(rows, 0.9),
                            frames_to_0_9_alone=frames_to_success(rows, 0.9, ALONE))
        (self.run.path / "summary.json").write_text(json.dumps(self.summary, indent=2))
        return self.summary

    def iterate(self) -> dict[str, Any]:
        """One iteration: rollout, student update, feedback, maybe a teacher update and evaluation."""
        cfg = self.config
        timers = dict.fromkeys(TIMERS, 0.0)
        start = time.perf_counter()
        rollout = self.collect_rollout(timers)
        advantages, returns = compute_gae(rollout.rewards, rollout.values, rollout.dones,
                                          rollout.next_value, cfg.gamma, cfg.gae_lambda)
        lam = cfg.guidance_lambda(self.frames) if cfg.teacher_guides else 0.0
        t0 = time.perf_counter()
        stats = self.update_student(rollout, advantages, returns, lam)
        timers["time_student_update"] = time.perf_counter() - t0
        self.frames += cfg.frames_per_iteration
        self.iteration += 1
        row: dict[str, Any] = {"iteration": self.iteration, "frames": self.frames, **self._episode_stats(), **stats}
        if cfg.teacher_guides:
            took_advice = (rollout.actions == rollout.teacher_probs.argmax(-1)) & rollout.advised.bool()
            followed = took_advice.flatten().cpu().numpy()
            self.trust.update(rollout.keys, followed, advantages.flatten().cpu().numpy())
            row.update({"lambda": lam, "trust": float(rollout.trust.mean()), "advice_followed_rate": float(followed.mean())})
        if cfg.teacher_learns:
            row.update(self.feed_back(rollout, advantages, timers))
        if cfg.eval_every and self.iteration % cfg.eval_every == 0:
            t0 = time.perf_counter()
            row.update(self._eval_row())
            timers["time_eval"] = time.perf_counter() - t0
        elapsed = time.perf_counter() - start
        self.wall_time += elapsed
        row.update(timers, fps=cfg.frames_per_iteration / elapsed, wall_time=self.wall_time)
        if self.teacher is not None:
            row.update(self.teacher.stats(), teacher_version=self.teacher.version)
        return row

    def collect_rollout(self, timers: dict[str, float]) -> Rollout:
        """Step every environment copy `num_steps` times; ask the teacher when the mode needs it."""
        cfg, n, steps, n_actions = self.config, self.config.num_envs, self.config.num_steps, len(self.actions)
        dev = self.device
        obs_buf: dict[str, list[torch.Tensor]] = {"image": [], "direction": [], "mission": []}
        shown = torch.zeros(steps, n, n_actions, device=dev)
        advice_logits = torch.zeros(steps, n, n_actions, device=dev)
        pull = cfg.advice_weight * cfg.guidance_lambda(self.frames) if cfg.teacher_guides else 0.0
        teacher_probs = torch.zeros(steps, n, n_actions, device=dev)
        advised = torch.zeros(steps, n, device=dev)
        trust = torch.zeros(steps, n, device=dev)
        keys: list[str] = []
        actions = torch.zeros(steps, n, dtype=torch.long, device=dev)
        logprobs, values, rewards, dones = (torch.zeros(steps, n, device=dev) for _ in range(4))
        successes = np.zeros((steps, n), dtype=bool)
        sits_buf: list[list[Situation]] | None = [] if cfg.uses_teacher else None
        for t in range(steps):
            tensors = obs_to_tensors(self.obs, dev)
            for k in obs_buf:
                obs_buf[k].append(tensors[k])
            if sits_buf is not None:
                t0 = time.perf_counter()
                sits = situations(self.envs, self.obs, self.actions, self.last_actions)
                sits_buf.append(sits)
                timers["time_env"] += time.perf_counter() - t0
                if cfg.teacher_guides:
                    t0 = time.perf_counter()
                    advice = self.teacher.advise(sits)
                    timers["time_teacher"] += time.perf_counter() - t0
                    teacher_probs[t] = torch.as_tensor(np.stack([a.probs for a in advice]), dtype=torch.float32, device=dev)
                    advised[t] = torch.as_tensor([a.available for a in advice], dtype=torch.float32, device=dev)
                    show = torch.as_tensor(self.rng.random(n) < cfg.advice_prob, device=dev) & advised[t].bool()
                    shown[t] = teacher_probs[t] * show[:, None]
                    keys += [question(s) for s in sits]
                    trust[t] = torch.tensor([self.trust.trust(k) for k in keys[-n:]], device=dev)
                    if pull:
                        weight = pull * trust[t] * show
                        advice_logits[t] = weight[:, None] * teacher_probs[t].clamp(min=ADVICE_FLOOR).log()
            t0 = time.perf_counter()
            with torch.no_grad():
                action, logprob, value = self.model.act(tensors, shown[t], advice_logits[t])
            timers["time_student"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            chosen = action.cpu().numpy()
            self.obs, reward, terminated, truncated, _ = self.envs.step(chosen)
            timers["time_env"] += time.perf_counter() - t0
            done = terminated | truncated
            actions[t], logprobs[t], values[t] = action, logprob, value
            rewards[t] = torch.as_tensor(reward, dtype=torch.float32, device=dev)
            dones[t] = torch.as_tensor(done, dtype=torch.float32, device=dev)
            successes[t] = terminated & (reward > 0)
            self._track_episodes(reward, done, successes[t], chosen)
        with torch.no_grad():  # bootstrap value of the state after the rollout, seen without advice
            next_value = self.model(obs_to_tensors(self.obs, dev), torch.zeros(n, n_actions, device=dev))[1]
        return Rollout({k: torch.stack(v) for k, v in obs_buf.items()}, shown, advice_logits, teacher_probs, advised,
                       trust, actions, logprobs, values, rewards, dones, successes, next_value, sits_buf, keys)

    def update_student(self, rollout: Rollout, advantages: torch.Tensor, returns: torch.Tensor,
                       lam: float) -> dict[str, float]:
        """PPO on the rollout, plus lambda * trust * CE(teacher || student) on advised states."""
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        weight = flat(rollout.advised) * lam * flat(rollout.trust)
        batch = PPOBatch(
            obs={k: flat(v) for k, v in rollout.obs.items()}, advice=flat(rollout.advice_shown),
            advice_logits=flat(rollout.advice_logits),
            teacher_probs=flat(rollout.teacher_probs), guidance_weight=weight, actions=flat(rollout.actions),
            logprobs=flat(rollout.logprobs), advantages=flat(advantages), returns=flat(returns), values=flat(rollout.values),
        )
        cfg = self.config
        return ppo_update(self.model, self.optimizer, batch, epochs=cfg.update_epochs, minibatches=cfg.minibatches,
                          clip_coef=cfg.clip_coef, ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef,
                          max_grad_norm=cfg.max_grad_norm)

    def feed_back(self, rollout: Rollout, advantages: torch.Tensor, timers: dict[str, float]) -> dict[str, float]:
        """Turn the rollout into feedback; every K iterations the teacher learns from what gathered.

        The teacher first reads the feedback's situations (in feedback mode it has not advised on
        them yet; this is inference, timed as `time_teacher`). A guiding teacher re-advises them
        after the update in one batch, rather than a few at a time as the next rollout meets them
        (much cheaper for a local model)."""
        t0 = time.perf_counter()
        with torch.no_grad():
            following = torch.cat([rollout.values[1:], rollout.next_value[None]])
            td = rollout.rewards + self.config.gamma * following * (1 - rollout.dones) - rollout.values
            steps, envs = rollout.actions.shape
            flat_obs = {k: v.reshape(steps * envs, *v.shape[2:]) for k, v in rollout.obs.items()}
            logits, _ = self.model(flat_obs, torch.zeros(steps * envs, len(self.actions), device=self.device))
            policy = torch.softmax(logits, -1).view(steps, envs, -1)  # the student's own view, no advice
        outcomes = episode_outcomes(rollout.dones.cpu().numpy().astype(bool), rollout.successes)
        self.pending_feedback.append((rollout.situations, rollout.actions.cpu().numpy(), advantages.cpu().numpy(),
                                      td.cpu().numpy(), outcomes, policy.cpu().numpy()))
        if self.iteration % self.config.teacher_update_every:
            timers["time_teacher_update"] += time.perf_counter() - t0
            return {}
        parts = list(zip(*self.pending_feedback))
        items = collect_feedback(sum(parts[0], []), *(np.concatenate(p) for p in parts[1:]))
        self.pending_feedback = []
        prompts = list({question(i.situation): i.situation for i in items}.values())
        timers["time_teacher_update"] += time.perf_counter() - t0
        self._read(prompts, timers)  # states the teacher has not read yet (feedback mode): inference, not update
        t0 = time.perf_counter()
        stats = self.teacher.learn(items)
        timers["time_teacher_update"] += time.perf_counter() - t0
        if self.config.teacher_guides:
            self._read(prompts, timers)
        return stats

    def _read(self, situations: list[Situation], timers: dict[str, float]) -> None:
        """The teacher's advice on these situations, in one batch (cached for its current version)."""
        t0 = time.perf_counter()
        self.teacher.advise(situations)
        timers["time_teacher"] += time.perf_counter() - t0

    # ------------------------------------------------------------- bookkeeping

    def _track_episodes(self, reward, done, success, chosen) -> None:
        self.running_return += reward
        self.running_length += 1
        for i in np.flatnonzero(done):
            self.episode_success.append(float(success[i]))
            self.episode_return.append(float(self.running_return[i]))
            self.episode_length.append(float(self.running_length[i]))
        self.running_return[done] = 0.0
        self.running_length[done] = 0
        self.last_actions = [None if d else self.actions[a] for d, a in zip(done, chosen)]

    def _episode_stats(self) -> dict[str, float]:
        if not self.episode_success:
            return {"success_rate": 0.0, "mean_return": 0.0, "mean_length": float("nan")}
        return {"success_rate": float(np.mean(self.episode_success)), "mean_return": float(np.mean(self.episode_return)),
                "mean_length": float(np.mean(self.episode_length))}

    def _eval_row(self) -> dict[str, float]:
        """Held-out greedy success of the student alone (no advice) and, with a teacher, of the teacher alone."""
        cfg = self.config
        row = {"student_eval_success_rate": evaluate_student(self.model, cfg.env_id, cfg.eval_episodes, cfg.seed, cfg.device).success_rate}
        if self.teacher is not None:
            result = evaluate_teacher(self.teacher, cfg.env_id, cfg.eval_episodes, cfg.seed)
            row.update(teacher_success_rate=result.success_rate, advice_accuracy=result.advice_accuracy,
                       advice_accuracy_balanced=result.advice_accuracy_balanced)
        return row

    def _evaluate_all(self, when: str) -> dict[str, Any]:
        """Held-out student (and teacher) results, for the before/after summary."""
        cfg = self.config
        out = {f"student_{when}": evaluate_student(self.model, cfg.env_id, cfg.eval_episodes, cfg.seed, cfg.device).to_dict()}
        if self.teacher is not None:
            out[f"teacher_{when}"] = evaluate_teacher(self.teacher, cfg.env_id, cfg.eval_episodes, cfg.seed).to_dict()
        return out

    def save(self) -> Path:
        state = {
            "config": self.config.to_dict(), "iteration": self.iteration, "frames": self.frames,
            "wall_time": self.wall_time, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "episodes": [list(self.episode_success), list(self.episode_return), list(self.episode_length)],
            "trust": self.trust.state_dict(), "pending_feedback": self.pending_feedback, "summary": self.summary,
            "teacher": self.teacher.state_dict() if self.teacher is not None else None,
            "rng": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state()},
        }
        return self.run.save_checkpoint(state, self.iteration)

    def _adopt_teacher(self, run_dir: str) -> None:
        """Start from the teacher another run learnt (same teacher model required)."""
        state = RunDir(run_dir).require().load_checkpoint()
        source = state.get("config", {}).get("teacher")
        if source != self.config.teacher or state.get("teacher") is None:
            raise MutualRLError(f"run {run_dir!r} has no {self.config.teacher!r} teacher to start from (it used {source!r})")
        self.teacher.load_state_dict(state["teacher"])

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.iteration, self.frames, self.wall_time = state["iteration"], state["frames"], state["wall_time"]
            for buf, values in zip((self.episode_success, self.episode_return, self.episode_length), state["episodes"]):
                buf.extend(values)
            self.trust.load_state_dict(state["trust"])
            self.pending_feedback = state["pending_feedback"]
            self.summary = state["summary"]
            if self.teacher is not None and state["teacher"] is not None:
                self.teacher.load_state_dict(state["teacher"])
            self.rng.bit_generator.state = state["rng"]["numpy"]
            torch.set_rng_state(state["rng"]["torch"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise MutualRLError(f"checkpoint in {str(self.run.checkpoint_dir)!r} does not fit this run ({err})") from None
        self.run.truncate_metrics(self.iteration)


def frames_to_success(rows: list[dict[str, Any]], threshold: float, key: str = "success_rate") -> int | None:
    """Frames at the first iteration whose `key` reached `threshold`: by default the rolling success
    of the training episodes (the student acting with whatever advice it is shown); `ALONE` for the
    held-out greedy success of the student without advice, measured every `eval_every` iterations."""
    for row in rows:
        if row.get(key, 0.0) >= threshold:
            return int(row["frames"])
    return None


def load_student(out: str | Path) -> tuple[TrainConfig, ActorCritic]:
    """The config and student of a saved run, for evaluation."""
    run = RunDir(out).require()
    state = run.load_checkpoint()
    config = TrainConfig.from_dict(state["config"])
    model = ActorCritic(len(task_actions(config.env_id)))
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as err:
        raise MutualRLError(f"checkpoint in {str(run.checkpoint_dir)!r} does not hold a student ({type(err).__name__})") from None
    return config, model

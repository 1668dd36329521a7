"""The cooperative loop: rollout -> GAE -> guidance -> student update -> feedback -> teacher update.

Modes: `rl` (student alone), `guided` (teacher -> student), `feedback` (student -> teacher),
`mutual` (both). `Trainer.iterate` is the algorithm; each step is one call into the module that
owns it: `guidance` (advice and trust), `student` (PPO), `feedback` (the student's verdict),
`teachers` (advise, learn), `evaluation` and `tracking` (metrics, checkpoints).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mutualrl.config import RESUME_CHANGES, TrainConfig
from mutualrl.envs import has_locked_doors, make_env, obs_to_tensors, situations, task_actions, unwrapped_envs
from mutualrl.errors import MutualRLError
from mutualrl.evaluation import EvalResult, evaluate_student, evaluate_subgoals, evaluate_teacher
from mutualrl.feedback import PromptFeedback, build_feedback, build_subgoal_feedback, merge_feedback
from mutualrl.guidance import ActionGuidance
from mutualrl.rollout import AdviceRecord, Rollout, flatten
from mutualrl.ppo import PPOBatch, compute_gae, ppo_update
from mutualrl.students import grow_optimizer_state, load_student, make_student, recorded_actions, recorded_config
from mutualrl.subgoal_guidance import SubgoalGuidance
from mutualrl.teachers import Teacher, make_teacher
from mutualrl.tracking import ALONE, EpisodeTracker, MetricsLogger, RunDir, Timer, frames_to_success


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed torch and pick its kernels: deterministic ones give a seed and a thread count the same
    run (on several CPU threads a teacher's update otherwise adds its gradients in varying order)."""
    if deterministic:  # cuBLAS keeps its sums in order only with a fixed workspace, set before its first call
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.manual_seed(seed)


class Trainer:
    """Trains one run: `Trainer(config, out).train()` or `Trainer.resume(out).train()`."""

    def __init__(self, config: TrainConfig, out: str | Path, *, teacher: Teacher | None = None,
                 quiet: bool = False, _checkpoint: dict[str, Any] | None = None):
        self.config = config.validate()
        self.run = RunDir(out)
        if _checkpoint is None and self.run.checkpoints():
            raise MutualRLError(f"{str(self.run.path)!r} already holds a run; use --resume or another --out")
        self.run.create()
        self.console = Console(stderr=True, quiet=quiet)
        self.quiet = quiet
        if config.device == "cuda" and not torch.cuda.is_available():
            raise MutualRLError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
        self.device = torch.device(config.device)
        # a resumed run keeps the actions its student was built with
        self.actions = (task_actions(config.env_id, config.action_space) if _checkpoint is None
                        else recorded_actions(_checkpoint))
        seed_everything(config.seed, config.deterministic)
        self.rng = np.random.default_rng(config.seed)
        self.subgoals = config.guidance.advice == "subgoal"
        self.student = make_student(config.student, len(self.actions), config.guidance.advice,
                                    config.student_memory, config.action_mask).to(self.device)
        self.optimizer = torch.optim.Adam(self.student.parameters(), lr=config.ppo.learning_rate, eps=1e-5, fused=True)
        learnt = (RunDir(config.teacher.start_from).teacher_state(config.teacher.name)  # checked before a model loads
                  if _checkpoint is None and config.teacher.start_from else None)
        self.teacher = teacher
        if self.teacher is None and config.uses_teacher:
            self.teacher = make_teacher(config.teacher.name, config=config.teacher, device=config.device, seed=config.seed)
        if config.teacher_learns and self.teacher is not None and not self.teacher.learns:
            raise MutualRLError(f"mode {config.mode!r} needs a teacher that learns; {config.teacher.name!r} is fixed")
        self.guidance: ActionGuidance | SubgoalGuidance | None = None
        if self.subgoals and config.uses_teacher:  # subgoals are chosen to be judged even where not shown
            self.guidance = SubgoalGuidance(config.guidance, self.teacher, self.rng, self.device, config.num_envs,
                                            self.actions, shows=config.teacher_guides,
                                            steps=has_locked_doors(config.env_id))
        elif config.teacher_guides:
            self.guidance = ActionGuidance(config.guidance, self.teacher, self.rng, self.device)
        self.iteration, self.frames, self.wall_time = 0, 0, 0.0
        self.reached_target = False  # every target set was reached: the run is over
        self.reached_alone = False  # the student alone reached `target_success` at an evaluation
        self.episodes = EpisodeTracker(config.num_envs)
        self.pending_feedback: dict[str, PromptFeedback] = {}
        self.summary: dict[str, Any] = {}
        if _checkpoint is not None:
            self._restore(_checkpoint)
        else:
            if learnt is not None:  # the teacher another run learnt (the same teacher model)
                self.teacher.load_state_dict(learnt)
            if config.student_from:
                self._adopt_student(config.student_from)
            self.run.write_config(config)
            self.run.truncate_metrics(0)  # rows a killed start left before its first checkpoint
        reset_seed = int(np.random.SeedSequence([config.seed, self.iteration]).generate_state(1)[0] % 500_000)
        self.envs = make_env(config.env_id, config.num_envs, reset_seed)
        self.obs, _ = self.envs.reset(seed=reset_seed)
        self.last_actions: list[str | None] = [None] * config.num_envs
        self.entropy = np.full(config.num_envs, np.log(len(self.actions)))  # the student's, at the last step
        self.memory = self.student.initial_memory(config.num_envs, self.device)  # None without memory
        self.starts = torch.ones(config.num_envs, device=self.device)  # 1 where the next step begins an episode

    @classmethod
    def resume(cls, out: str | Path, *, frames: int | None = None, device: str | None = None,
               target_success: float | None = None, teacher: Teacher | None = None,
               quiet: bool = False) -> "Trainer":
        """Continue the run in `out` from its newest checkpoint, optionally to a new frame budget,
        on another device (a run trained on a GPU goes on on a CPU: a checkpoint loads onto the
        CPU whatever device saved it), or until the student alone reaches a new `target_success`.
        Nothing else changes: the rest is what the saved student and teacher were trained with."""
        run = RunDir(out).require()
        checkpoint = run.load_checkpoint()
        config = recorded_config(checkpoint)  # its student as it trained, whatever today's defaults
        changes = {key: value for key, value in zip(RESUME_CHANGES, (frames, device, target_success)) if value is not None}
        if changes:
            config = config.replace(**changes)
            run.write_config(config.validate())
        trainer = cls(config, out, teacher=teacher, quiet=quiet, _checkpoint=checkpoint)
        trainer.summary.setdefault("resumed_at_frames", []).append(trainer.frames)  # each interruption, kept
        return trainer

    # ------------------------------------------------------------------ the loop

    def train(self) -> dict[str, Any]:
        """Iterate until the frame budget is spent or the student alone reaches `target_success`;
        returns the before/after summary."""
        cfg = self.config
        logger = MetricsLogger(self.run, purge_step=self.frames if self.iteration else None)
        if self.iteration == 0:  # a teacher that will not learn here is judged once, at the end: the same figures,
            self.summary = self._evaluate_all("before", teacher=self.config.teacher_learns)  # and advice from the start
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            TextColumn("{task.completed:,.0f}/{task.total:,.0f} frames"),
                            TextColumn("{task.fields[fps]:>5.0f} fps"), TextColumn("success {task.fields[success]:.2f}"),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, disable=self.quiet)
        try:
            with progress:
                task = progress.add_task(f"{cfg.mode} {cfg.env_id}", total=cfg.frames, completed=self.frames,
                                         fps=0, success=0)
                while self.frames < cfg.frames and not self.reached_target:
                    row = self.iterate()
                    logger.log(row)
                    # the run's rate so far: one iteration's would show an evaluation's cost as the speed
                    progress.update(task, completed=self.frames, fps=self.frames / self.wall_time,
                                    success=row["success_rate"])
                    self.reached_target = self._targets_reached(row)
                    if self.iteration % cfg.checkpoint_every == 0 or self.frames >= cfg.frames or self.reached_target:
                        self.save()
        finally:
            logger.close()
            self.envs.close()
        self.summary.update(self._evaluate_all("after"))
        if "teacher_after" in self.summary:
            self.summary.setdefault("teacher_before", self.summary["teacher_after"])
        rows = self.run.read_metrics()
        self.summary.update(frames=self.frames, iterations=self.iteration, wall_time=self.wall_time,
                            reached_target=self.reached_target,
                            frames_to_0_9=frames_to_success(rows, 0.9),
                            frames_to_0_9_alone=frames_to_success(rows, 0.9, ALONE))
        (self.run.path / "summary.json").write_text(json.dumps(self.summary, indent=2))
        return self.summary

    def _targets_reached(self, row: dict[str, Any]) -> bool:
        """Whether each target set has been reached: the student alone at some evaluation so far,
        the rolling training success (over a full window of episodes) at this iteration."""
        targets = self.config.evaluation
        self.reached_alone |= 0 < targets.target <= row.get(ALONE, -1.0)
        trained = frames_to_success([row], targets.training_target) is not None  # (its full-window rule)
        return ((targets.target > 0 or targets.training_target > 0) and (not targets.target or self.reached_alone)
                and (not targets.training_target or trained))

    def iterate(self) -> dict[str, Any]:
        """One iteration: rollout, GAE, guidance, student update, feedback, maybe teacher update and evaluation."""
        cfg, timer, start = self.config, Timer(), time.perf_counter()
        rollout = self.collect_rollout(timer)
        batch, advantages, row = self.prepare_update(rollout)
        with timer("student_update"):
            row.update(ppo_update(self.student, self.optimizer, batch, cfg.ppo))
        self.frames += cfg.frames_per_iteration
        self.iteration += 1
        if cfg.teacher_learns:
            row.update(self.feed_back(rollout, advantages, timer))
        if cfg.evaluation.every and self.iteration % cfg.evaluation.every == 0:
            with timer("eval"):
                row.update(self._eval_row())
        elapsed = time.perf_counter() - start
        self.wall_time += elapsed
        row.update(iteration=self.iteration, frames=self.frames, **self.episodes.row(), **timer.row(),
                   fps=cfg.frames_per_iteration / elapsed, wall_time=self.wall_time)
        if self.teacher is not None:
            row.update(self.teacher.stats(cfg.frames_per_iteration), teacher_version=self.teacher.version)
        return row

    def prepare_update(self, rollout: Rollout) -> tuple[PPOBatch, torch.Tensor, dict[str, Any]]:
        """GAE, the guidance's verdict on the rollout (trust, usage: the row's first metrics), and
        the student's batch with the guidance term's weight."""
        cfg = self.config
        advantages, returns = compute_gae(rollout.rewards, rollout.values, rollout.dones, rollout.next_value,
                                          cfg.ppo.gamma, cfg.ppo.gae_lambda)
        row: dict[str, Any] = {}
        guidance_weight = torch.zeros_like(rollout.rewards)
        if self.guidance is not None:
            row.update(self.guidance.update(rollout, advantages, self.frames))
            row.update(self.guidance.usage(cfg.frames_per_iteration))
            if cfg.teacher_guides:
                guidance_weight = self.guidance.loss_weight(rollout, self.frames)
        return PPOBatch.from_rollout(rollout, advantages, returns, guidance_weight), advantages, row

    def collect_rollout(self, timer: Timer) -> Rollout:
        """Step every environment copy `num_steps` times, asking the teacher where the mode guides."""
        cfg, dev, guidance = self.config, self.device, self.guidance
        obs, advice, actions, logprobs, values, rewards, dones, successes, starts = [], [], [], [], [], [], [], [], []
        memory = self.memory
        texts: list[list] | None = [] if cfg.uses_teacher and not self.subgoals else None
        keys: list[list[str]] | None = [] if cfg.uses_teacher else None
        no_advice = AdviceRecord.none(cfg.num_envs, self.student.advice_dim, len(self.actions), dev)  # shared, never written
        if guidance is not None:
            with timer("teacher"):  # under a budget, the reads the last rollout asked for
                guidance.start_rollout()
        for t in range(cfg.ppo.num_steps):
            tensors = obs_to_tensors(self.obs, dev)
            step_advice = self._advise(t, texts, keys, timer) or no_advice
            with timer("student"), torch.no_grad():
                step = self.student.act(tensors, step_advice.shown, step_advice.logits, gate=step_advice.gate,
                                        memory=self.memory, starts=self.starts)
            action, self.memory = step.action, step.memory
            self.entropy = step.entropy.cpu().numpy()
            with timer("env"):
                chosen = action.cpu().numpy()
                self.obs, reward, terminated, truncated, info = self.envs.step(chosen)
            done = terminated | truncated
            success = terminated & (reward > 0)
            self.episodes.step(reward, done, success)
            if guidance is not None:  # ends subgoals; a shaped reward where one is asked for
                reward = reward + guidance.after_step(self.obs, done, success, info, t)
            self.last_actions = [None if d else self.actions[a] for d, a in zip(done, chosen)]
            obs.append(tensors)
            advice.append(step_advice)
            actions.append(action)
            logprobs.append(step.logprob)
            values.append(step.value)
            rewards.append(torch.as_tensor(reward, dtype=torch.float32, device=dev))
            starts.append(self.starts)
            self.starts = torch.as_tensor(done, dtype=torch.float32, device=dev)
            dones.append(self.starts)
            successes.append(success)
        with torch.no_grad():  # bootstrap value of the state after the rollout, seen without advice
            next_value = self.student.alone(obs_to_tensors(self.obs, dev), self.memory, self.starts)[1]
        return Rollout(obs={k: torch.stack([o[k] for o in obs]) for k in obs[0]}, advice=AdviceRecord.stack(advice),
                       actions=torch.stack(actions), logprobs=torch.stack(logprobs), values=torch.stack(values),
                       rewards=torch.stack(rewards), dones=torch.stack(dones), successes=np.stack(successes),
                       next_value=next_value, situations=texts, keys=keys,
                       decisions=guidance and guidance.decisions, hindsight=guidance and guidance.hindsight,
                       starts=torch.stack(starts), memory=memory)

    def _advise(self, step: int, texts: list | None, keys: list | None, timer: Timer) -> AdviceRecord | None:
        """The teacher's part of one step: the states as text (action advice) and, where the mode
        has guidance, its advice; the prompt keys go to `keys`."""
        if keys is None:
            return None
        live = unwrapped_envs(self.envs)
        if isinstance(self.guidance, SubgoalGuidance):
            with timer("teacher"):
                self.teacher.observe(live, self.last_actions)
                record = self.guidance.advise(self.obs, live, step, self.entropy)
            keys.append(self.guidance.keys())
            return record
        with timer("env"):
            texts.append(situations(self.obs, self.actions, self.last_actions))
            keys.append([self.teacher.key(s) for s in texts[-1]])
        if self.guidance is None:
            return None
        with timer("teacher"):
            return self.guidance.advise(texts[-1], keys[-1], live, self.frames, self.entropy)

    def feed_back(self, rollout: Rollout, advantages: torch.Tensor, timer: Timer) -> dict[str, float]:
        """Turn the rollout into per-prompt feedback; every K iterations the teacher learns from
        what gathered (its reading of prompts during the update is booked as teacher inference)."""
        with timer("teacher_update"):
            signal, gamma = self.config.teacher.feedback_signal, self.config.ppo.gamma
            if self.subgoals:
                records = build_subgoal_feedback(rollout, advantages, signal, gamma, self.teacher.key)
            else:
                policy = self.student.own_policy(rollout.flat_obs, rollout.memory, flatten(rollout.starts))
                policy = policy.view(*rollout.actions.shape, -1)
                records = build_feedback(rollout, advantages, policy, signal, gamma)
            self.pending_feedback = merge_feedback(self.pending_feedback, records)
        if self.iteration % self.config.teacher.update_every:
            return {}
        with timer("teacher_update"):
            # re-read the prompts at once where the teacher guides, unless a budget rations the reads
            refresh = self.config.teacher_guides and not self.config.guidance.budget
            stats = self.teacher.learn(list(self.pending_feedback.values()), refresh=refresh)
        self.pending_feedback = {}
        timer.move(stats.pop("time_reading", 0.0), "teacher_update", "teacher")
        return stats

    # ------------------------------------------------------------- evaluation

    def _eval_row(self) -> dict[str, float]:
        """Held-out greedy success of the student alone (no advice) and, with a teacher, of the teacher alone."""
        cfg = self.config
        row = {ALONE: evaluate_student(self.student, cfg.env_id, cfg.evaluation.episodes, cfg.seed, cfg.device,
                                       self.actions).success_rate}
        every = cfg.evaluation.teacher_every
        if self.teacher is not None and every and (self.iteration // cfg.evaluation.every) % every == 0:
            result = self._judge_teacher()
            if self.subgoals:
                row["subgoal_accuracy"] = result.subgoal_accuracy
            else:
                row.update(teacher_success_rate=result.success_rate, advice_accuracy=result.advice_accuracy,
                           advice_accuracy_balanced=result.advice_accuracy_balanced)
        return row

    def _judge_teacher(self) -> EvalResult:
        """The teacher on held-out seeds: acting alone (action advice), or its subgoals along the
        bot's episodes (subgoal advice)."""
        judge = evaluate_subgoals if self.subgoals else evaluate_teacher
        return judge(self.teacher, self.config.env_id, self.config.evaluation.episodes, self.config.seed, self.actions)

    def _evaluate_all(self, when: str, teacher: bool = True) -> dict[str, Any]:
        """Held-out student (and, with `teacher`, teacher) results, for the before/after summary."""
        cfg = self.config
        out = {f"student_{when}": evaluate_student(self.student, cfg.env_id, cfg.evaluation.episodes, cfg.seed,
                                                   cfg.device, self.actions).to_dict()}
        if self.teacher is not None and teacher:
            out[f"teacher_{when}"] = self._judge_teacher().to_dict()
        return out

    # ------------------------------------------------------------- checkpoints

    def save(self) -> Path:
        """An atomic checkpoint of plain values and tensors (no environment or other live objects)."""
        state = {
            "config": self.config.to_dict(), "iteration": self.iteration, "frames": self.frames,
            "wall_time": self.wall_time, "reached_target": self.reached_target, "reached_alone": self.reached_alone,
            "model": self.student.state_dict(), "student_architecture": self.student.architecture,
            "student_memory": self.student.memory_size, "student_action_mask": self.student.action_mask,
            "optimizer": self.optimizer.state_dict(),
            "episodes": self.episodes.state_dict(),
            "trust": self.guidance.trust.state_dict() if self.guidance is not None else {},
            "pending_feedback": [record.to_dict() for record in self.pending_feedback.values()],
            "summary": self.summary, "teacher": self.teacher.state_dict() if self.teacher is not None else None,
            "rng": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state()},
        }
        return self.run.save_checkpoint(state, self.iteration)

    def _adopt_student(self, run_dir: str) -> None:
        """Start from the student another run trained (its weights; a fresh optimizer)."""
        theirs, student = load_student(run_dir)
        ours = (len(self.actions), self.config.guidance.advice, self.config.student, self.config.student_memory)
        if (student.num_actions, theirs.guidance.advice, theirs.student, theirs.student_memory) != ours:
            raise MutualRLError(f"the student of {run_dir!r} is a {theirs.student!r} student (memory "
                                f"{theirs.student_memory}) with {theirs.action_space!r} actions on {theirs.env_id} and "
                                f"{theirs.guidance.advice!r} advice; this run needs a {ours[2]!r} student (memory "
                                f"{ours[3]}) with {ours[0]} actions and {ours[1]!r} advice (use action_space: full on "
                                "every level to carry a student)")
        self.student.load_state_dict(student.state_dict())

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.student.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            grow_optimizer_state(self.optimizer)
            self.iteration, self.frames, self.wall_time = state["iteration"], state["frames"], state["wall_time"]
            self.reached_target = state.get("reached_target", False)  # absent from checkpoints before it existed
            self.reached_alone = state.get("reached_alone", self.reached_target)  # (the only target there was)
            self.episodes.load_state_dict(state["episodes"])
            if self.guidance is not None:
                self.guidance.trust.load_state_dict(state["trust"])
            records = [PromptFeedback.from_dict(d) for d in state["pending_feedback"]]
            self.pending_feedback = {self.teacher.key(r.situation): r for r in records}
            self.summary = state["summary"]
            if self.teacher is not None and state["teacher"] is not None:
                self.teacher.load_state_dict(state["teacher"])
            self.rng.bit_generator.state = state["rng"]["numpy"]
            torch.set_rng_state(state["rng"]["torch"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise MutualRLError(f"checkpoint in {str(self.run.checkpoint_dir)!r} does not fit this run ({err})") from None
        self.run.truncate_metrics(self.iteration)

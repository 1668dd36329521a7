"""`mutualrl` command line: parses, calls into the library, prints. Bad input: one line, exit 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mutualrl import output
from mutualrl.config import FLAT_FIELDS, MODES, RESUME_CHANGES, TrainConfig, flat_items, read_yaml_mapping
from mutualrl.errors import MutualRLError

DEFAULT_ENV = "BabyAI-GoToRedBallNoDists-v0"


def _flag(key: str) -> str:
    """The `train` flag of a flat config key."""
    return "--env" if key == "env_id" else "--" + key.replace("_", "-")


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a student (and teacher) on one environment")
    p.add_argument("--config", help="YAML file of TrainConfig fields; flags below override it")
    p.add_argument("--out", required=True, help="run directory (metrics, TensorBoard, checkpoints)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest checkpoint (only "
                        + ", ".join(map(_flag, RESUME_CHANGES)) + " may change)")
    p.add_argument("--verbose", action="store_true", help="also show the libraries' warnings and progress bars")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's, every core; give 1 to each of several runs at once)")
    for key, (_, f) in FLAT_FIELDS.items():
        flag = _flag(key)
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if isinstance(f.default, bool):  # --name / --no-name
            p.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            p.add_argument(flag, dest=key, type=type(f.default), default=None, help=help_text)


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a saved student (RUN_DIR) or a teacher acting alone (--teacher)")
    p.add_argument("run_dir", nargs="?", help="run directory of a trained student")
    p.add_argument("--teacher", help="evaluate this teacher alone: smollm2 | bot | tiny | hf:PATH | endpoint:URL[#MODEL]")
    p.add_argument("--teacher-from", default=None, help="with --teacher: the teacher that this run directory learnt")
    p.add_argument("--action-space", default="task", help="with --teacher: task (the level's actions) | full (all seven; "
                                                          "every verb is a candidate subgoal) (default: task)")
    p.add_argument("--teacher-precision", default="auto", help="with --teacher: auto | float32 | bfloat16, the "
                                                                "frozen language model's weights (default: auto)")
    p.add_argument("--env", default=None, help=f"environment for --teacher (default: {DEFAULT_ENV})")
    p.add_argument("--advice", default="action",
                   help="with --teacher: action (the teacher acts alone) | subgoal (it acts alone through the bot's "
                        "planner; its subgoals are also judged along the bot's episodes)")
    p.add_argument("--episodes", type=int, default=100, help="episodes on held-out seeds (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="selects the held-out seed block (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", action="store_true", help="also show the libraries' warnings and progress bars")


def _grid_flags(p: argparse.ArgumentParser, what: str) -> None:
    """Where a grid runs: the same flags for every grid."""
    p.add_argument("--workers", type=int, default=1,
                   help=f"{what} trained at once; > 1 spreads the grid over Ray (pip install -e '.[ray]') (default: 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (and Ray CPUs) per task (default: all cores with 1 worker, else cores / workers)")
    p.add_argument("--ray-address", default=None, help="an existing Ray cluster (e.g. ray://head:10001 or auto)")
    p.add_argument("--gpus-per-run", type=float, default=0.0, help="GPUs each task asks Ray for (default: 1 with --device cuda)")


def _compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="run every mode x seed and write DIR/report.md")
    p.add_argument("--env", default=None, help=f"environment (default: the config's, else {DEFAULT_ENV})")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated modes")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    p.add_argument("--frames", type=int, default=None, help="frames per run")
    p.add_argument("--teacher", default=None, help="teacher for the modes that have one")
    p.add_argument("--config", help="YAML file of TrainConfig fields shared by every run")
    p.add_argument("--out", required=True)
    _grid_flags(p, "runs")
    p.add_argument("--device", default=None, help="cpu | cuda for every run (default: the config's)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--verbose", action="store_true", help="also show the libraries' warnings and progress bars")


def _curriculum_parser(sub) -> None:
    from mutualrl.curriculum import ARMS

    p = sub.add_parser("curriculum", help="climb levels of rising difficulty: every arm x seed, then DIR/report.md")
    p.add_argument("--config", help="YAML curriculum: TrainConfig fields plus stages: [{env_id, frames, target}] "
                                    "(default: the five-level curriculum with default settings)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated arms of {', '.join(ARMS)} (default: all)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1) (default: 3)")
    p.add_argument("--out", required=True, help="directory of the runs and the report; the same command resumes there")
    _grid_flags(p, "chains (arm x seed)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="also show the libraries' warnings and progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mutualrl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    _compare_parser(sub)
    _curriculum_parser(sub)
    p = sub.add_parser("report", help="rebuild DIR/report.md from the saved runs in DIR (a comparison or a curriculum)")
    p.add_argument("dir")
    sub.add_parser("envs", help="list the registered MiniGrid/BabyAI environment ids")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    config = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    for key in FLAT_FIELDS:
        value = getattr(args, key, None)
        if value is not None:
            config.set(key, value)
    return config.validate()


def _resume_conflicts(args: argparse.Namespace, saved: TrainConfig) -> list[str]:
    """Each setting the command names (in its --config file or a flag) that differs from the saved
    run's, as "--flag VALUE (the run's: SAVED)": the same command with --resume goes on, a changed one
    is refused rather than silently ignored."""
    named = {key for key, _ in flat_items(read_yaml_mapping(args.config, "config file"))} if args.config else set()
    named |= {key for key in FLAT_FIELDS if getattr(args, key) is not None}
    wanted = config_from_args(args)
    return [f"{_flag(key)} {wanted.get(key)} (the run's: {saved.get(key)})" for key in FLAT_FIELDS
            if key in named and key not in RESUME_CHANGES and wanted.get(key) != saved.get(key)]


def cmd_train(args: argparse.Namespace) -> None:
    from mutualrl.grid import Placement
    from mutualrl.loop import Trainer
    from mutualrl.students import recorded_config
    from mutualrl.tracking import RunDir

    Placement(threads=args.threads).use_threads()  # one run in this process: its threads checked as a grid's
    if args.resume:
        changed = _resume_conflicts(args, recorded_config(RunDir(args.out).require().load_checkpoint()))
        if changed:
            raise MutualRLError(f"--resume goes on with the run's own settings; {', '.join(changed)} "
                                f"(only {', '.join(map(_flag, RESUME_CHANGES))} may change)")
        trainer = Trainer.resume(args.out, quiet=args.quiet, **{key: getattr(args, key) for key in RESUME_CHANGES})
    else:
        trainer = Trainer(config_from_args(args), args.out, quiet=args.quiet)
    summary = trainer.train()
    print_summary(summary)


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    judged = summary.get("teacher_before") or {}
    accuracy = "subgoal_accuracy" if "subgoal_accuracy" in judged else "advice_accuracy"
    table = Table(title="before -> after (held-out seeds, greedy)")
    for col in ("who", "success before", "success after", "return before", "return after",
                f"{accuracy.replace('_', ' ')} before", "after"):
        table.add_column(col)
    for who in ("student", "teacher"):
        before, after = summary.get(f"{who}_before"), summary.get(f"{who}_after")
        if not before or not after:
            continue
        acc = lambda r: f"{r[accuracy]:.2f}" if r.get(accuracy) is not None else "-"  # noqa: E731
        table.add_row(who, f"{before['success_rate']:.2f}", f"{after['success_rate']:.2f}", f"{before['mean_return']:.3f}",
                      f"{after['mean_return']:.3f}", acc(before), acc(after))
    Console().print(table)
    reached = lambda key: f"{summary[key]:,}" if summary.get(key) is not None else "not reached"  # noqa: E731
    print(f"frames: {summary['frames']:,}  wall time: {summary['wall_time']:.0f}s  frames to 0.9 success: "
          f"{reached('frames_to_0_9')} (training episodes), {reached('frames_to_0_9_alone')} (student alone, held-out)")


def cmd_eval(args: argparse.Namespace) -> None:
    from mutualrl.config import ADVICE_KINDS
    from mutualrl.evaluation import evaluate_student, evaluate_subgoals, evaluate_teacher

    if args.episodes <= 0:
        raise MutualRLError(f"--episodes must be > 0, got {args.episodes}")
    if args.teacher:
        from mutualrl.config import ACTION_SPACES, TeacherConfig
        from mutualrl.envs import check_env_id, task_actions
        from mutualrl.teachers import make_teacher

        env_id = args.env or DEFAULT_ENV
        check_env_id(env_id)
        if args.advice not in ADVICE_KINDS:
            raise MutualRLError(f"unknown advice {args.advice!r}; allowed: {', '.join(ADVICE_KINDS)}")
        if args.action_space not in ACTION_SPACES:  # checked before any model is loaded
            raise MutualRLError(f"unknown action_space {args.action_space!r}; allowed: {', '.join(ACTION_SPACES)}")
        teacher_config = TeacherConfig(precision=args.teacher_precision)
        teacher_config.validate()
        learnt = None
        if args.teacher_from:  # read (and its teacher checked) before minutes of loading a model
            from mutualrl.tracking import RunDir

            learnt = RunDir(args.teacher_from).teacher_state(args.teacher)
        teacher = make_teacher(args.teacher, config=teacher_config, device=_device(args.device), seed=args.seed)
        if learnt is not None:
            teacher.load_state_dict(learnt)
        judge = evaluate_subgoals if args.advice == "subgoal" else evaluate_teacher
        result = judge(teacher, env_id, args.episodes, args.seed, task_actions(env_id, args.action_space))
        label = (f"teacher {args.teacher}{' from ' + args.teacher_from if args.teacher_from else ''} on {env_id}"
                 + (" (its subgoals, carried out by the bot's planner)" if args.advice == "subgoal" else ""))
    elif args.run_dir:
        from mutualrl.envs import FULL_ACTIONS
        from mutualrl.students import load_student

        config, model = load_student(args.run_dir)
        device = _device(args.device)
        result = evaluate_student(model.to(device), config.env_id, args.episodes, args.seed, device,
                                  FULL_ACTIONS[: model.num_actions])
        label = f"student of {args.run_dir} on {config.env_id}"
    else:
        raise MutualRLError("eval needs a run directory or --teacher NAME")
    if args.json:
        print(json.dumps(result.to_dict()))
        return
    print(f"{label}: {result.episodes} episodes")
    print(f"  success rate    {result.success_rate:.3f}")
    print(f"  mean return     {result.mean_return:.3f}")
    print(f"  mean length     {result.mean_length:.1f}")
    if result.subgoal_accuracy is not None:
        print(f"  subgoal accuracy {result.subgoal_accuracy:.3f} (the teacher's subgoal among the bot's)")
    if result.advice_accuracy is not None:
        per_action = ", ".join(f"{k} {v:.2f}" for k, v in result.per_action_accuracy.items())
        print(f"  advice accuracy {result.advice_accuracy:.3f} (balanced {result.advice_accuracy_balanced:.3f}; {per_action})")


def _device(name: str) -> str:
    """`name` if it is a device this machine has; one clear line otherwise."""
    from mutualrl.config import DEVICES

    if name not in DEVICES:
        raise MutualRLError(f"unknown device {name!r}; allowed: {', '.join(DEVICES)}")
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise MutualRLError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return name


def cmd_compare(args: argparse.Namespace) -> None:
    from mutualrl.compare import run_comparison

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        if mode not in MODES:
            raise MutualRLError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    if args.seeds <= 0:
        raise MutualRLError(f"--seeds must be > 0, got {args.seeds}")
    base = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    given = {"env_id": args.env, "frames": args.frames, "teacher": args.teacher, "device": args.device}
    base = base.replace(**{key: value for key, value in given.items() if value is not None}).validate()
    path = run_comparison(base, modes, args.seeds, Path(args.out), quiet=args.quiet, workers=args.workers,
                          threads=args.threads, ray_address=args.ray_address, gpus_per_run=args.gpus_per_run)
    print(f"report: {path}")


def cmd_curriculum(args: argparse.Namespace) -> None:
    from mutualrl.curriculum import Curriculum, parse_arms, run_curriculum

    arms = parse_arms(args.arms)
    if args.seeds <= 0:
        raise MutualRLError(f"--seeds must be > 0, got {args.seeds}")
    curriculum = Curriculum.from_yaml(args.config) if args.config else Curriculum(TrainConfig())
    report = run_curriculum(curriculum, arms, args.seeds, Path(args.out), quiet=args.quiet, workers=args.workers,
                            threads=args.threads, ray_address=args.ray_address, gpus_per_run=args.gpus_per_run)
    print(f"report: {report}")


def cmd_report(args: argparse.Namespace) -> None:
    from mutualrl.report import build_curriculum_report, build_report
    from mutualrl.tracking import CURRICULUM_FILE

    root = Path(args.dir)
    build = build_curriculum_report if (root / CURRICULUM_FILE).is_file() else build_report
    print(f"report: {build(root)}")


def cmd_envs(_args: argparse.Namespace) -> None:
    from mutualrl.envs import registered_env_ids

    print("\n".join(registered_env_ids()))


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    output.configure(verbose=getattr(args, "verbose", False))
    handlers = {"train": cmd_train, "eval": cmd_eval, "compare": cmd_compare, "curriculum": cmd_curriculum,
                "report": cmd_report, "envs": cmd_envs}
    try:
        handlers[args.command](args)
    except MutualRLError as err:
        print(f"mutualrl: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mutualrl: interrupted; the newest checkpoint is intact (use --resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

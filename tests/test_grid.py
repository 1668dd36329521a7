"""The grid runner on Ray, for comparisons and curricula: same results as in turn, a killed worker
resumed, failures reported, one served teacher for many runs. Ray is an optional extra; these
tests need it."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mutualrl.compare import run_comparison
from mutualrl.config import TrainConfig
from mutualrl.curriculum import Curriculum, run_curriculum, stage_dirs
from mutualrl.tracking import RunDir

from machinery import SMALL_STUDENT
from openai_server import OpenAICompatibleServer

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one local Ray per test process: these tests share one

SMALL = dict(env_id="MiniGrid-Empty-5x5-v0", num_envs=4, num_steps=32, eval_episodes=2, eval_every=4, **SMALL_STUDENT)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def base(**values) -> TrainConfig:
    return TrainConfig().replace(**{**SMALL, **values})


def figures(root: Path) -> dict:
    """Per run: every metric but the timings, and the summary's held-out results."""
    out = {}
    for run in sorted(p for p in root.iterdir() if (p / "summary.json").is_file()):
        rows = [{k: v for k, v in r.items() if not k.startswith("time_") and k not in ("fps", "wall_time")}
                for r in RunDir(run).read_metrics()]
        summary = json.loads((run / "summary.json").read_text())
        out[run.name] = (rows, summary["student_after"], summary["frames_to_0_9"])
    return out


def report_without_times(root: Path) -> list[str]:
    table = [line for line in (root / "report.md").read_text().splitlines() if line.startswith("| rl")]
    return [line.rsplit("|", 2)[0] for line in table[:1]]  # the results row, wall-time column dropped


def test_these_tests_share_one_test_process(request):
    """Under `make test` (`--dist loadgroup`) the Ray tests run in one process, one local Ray at a time:
    a test runner that ignores the group starts two, and each test's runs share the cores four ways."""
    if getattr(request.config.option, "loadgroup", False):  # (set in a test process of `--dist loadgroup`)
        assert request.node.nodeid.endswith("@ray"), f"{request.node.nodeid} runs outside its group"


def test_the_core_package_imports_no_ray():
    code = ("import sys, mutualrl, mutualrl.cli, mutualrl.compare, mutualrl.loop, mutualrl.report; "
            "import mutualrl.teachers; assert 'ray' not in sys.modules, 'ray imported'")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_workers_without_ray_say_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from mutualrl.cli import main; "
            f"sys.exit(main(['compare', '--modes', 'rl', '--seeds', '2', '--workers', '2', '--out', {str(tmp_path)!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "mutualrl: error: --workers > 1 runs the grid on Ray, which is not installed: "
        "pip install -e '.[ray]' (or pip install 'ray>=2.40')"]


def test_two_workers_give_the_same_runs_and_report_as_one(tmp_path, local_ray):
    config = base(frames=1024)
    run_comparison(config, ["rl"], 2, tmp_path / "in_turn", quiet=True, threads=1)
    run_comparison(config, ["rl"], 2, tmp_path / "on_ray", quiet=True, threads=1, workers=2)
    in_turn, on_ray = figures(tmp_path / "in_turn"), figures(tmp_path / "on_ray")
    assert list(on_ray) == ["rl_seed0", "rl_seed1"] and on_ray == in_turn
    assert report_without_times(tmp_path / "on_ray") == report_without_times(tmp_path / "in_turn")


def _kill_one_worker_once(run: RunDir, grid: threading.Thread) -> None:
    """Wait until `run` has logged 3 iterations (it has a checkpoint), SIGKILL the Ray worker that
    trains it (the one holding a file open in its directory), then wait for the grid to end."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trainer = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if _is_run_worker(pid, run)]
        if trainer and len(run.read_metrics()) >= 3:
            break
        time.sleep(0.2)
    assert trainer, "no Ray worker found training the run"
    os.kill(trainer[0], signal.SIGKILL)
    grid.join(timeout=240)
    assert not grid.is_alive()


def test_a_killed_worker_is_retried_and_its_run_resumed(tmp_path, local_ray):
    config = base(frames=4096, checkpoint_every=1)
    grid = threading.Thread(target=run_comparison, args=(config, ["rl"], 2, tmp_path), daemon=True,
                            kwargs=dict(quiet=True, threads=1, workers=2))
    grid.start()
    _kill_one_worker_once(RunDir(tmp_path / "rl_seed0"), grid)
    summaries = [json.loads((tmp_path / f"rl_seed{s}" / "summary.json").read_text()) for s in (0, 1)]
    assert sum(bool(s.get("resumed_at_frames")) for s in summaries) == 1  # the killed run went on from its checkpoint
    for seed in (0, 1):
        rows = RunDir(tmp_path / f"rl_seed{seed}").read_metrics()
        assert [r["iteration"] for r in rows] == list(range(1, 33))  # none lost, none repeated
    assert json.loads((tmp_path / "failures.json").read_text()) == {}


def _is_run_worker(pid: int, run: RunDir) -> bool:
    """Whether `pid` is a Ray worker with a file open in `run`'s directory (its metrics or events)."""
    try:
        if b"work_in_worker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
        return any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(run.path.resolve()))
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def test_a_run_that_fails_twice_is_reported_and_the_others_finish(tmp_path, local_ray):
    config = base(frames=256, teacher="hf:/no/such/model")
    report = run_comparison(config, ["rl", "guided"], 1, tmp_path, quiet=True, threads=1, workers=2)
    failures = json.loads((tmp_path / "failures.json").read_text())
    assert list(failures) == ["guided_seed0"] and "is not a Hugging Face model folder" in failures["guided_seed0"]
    assert (tmp_path / "rl_seed0" / "summary.json").is_file()
    text = report.read_text()
    assert "Missing runs (1)" in text and "`guided_seed0`" in text


def test_one_served_teacher_for_every_run_of_a_grid(tmp_path, local_ray, tiny_causal):
    """The recipe of the README: one OpenAI-compatible server, `teacher: endpoint:URL` in every run."""
    with OpenAICompatibleServer(*tiny_causal) as server:
        config = base(frames=256, teacher=f"endpoint:{server.url}", teacher_update_every=2, eval_every=0)
        run_comparison(config, ["feedback"], 2, tmp_path, quiet=True, threads=1, workers=2)
        requests = server.requests
    assert requests > 0
    memories = []
    for seed in (0, 1):
        state = RunDir(tmp_path / f"feedback_seed{seed}").load_checkpoint()
        assert state["teacher"]["version"] >= 1 and state["teacher"]["method"] == "batch"
        memories.append(state["teacher"]["memory"])
    assert memories[0] and memories[1] and memories[0] != memories[1]  # each run keeps its own memory


#: a two-stage curriculum on empty rooms, the student only (no model to load in the workers); its one
#: evaluation mid-chain is at the end of stage 0, so neither stage ends early
EMPTY_ROOMS = {**SMALL_STUDENT, "num_envs": 4, "num_steps": 32, "eval_every": 12, "eval_episodes": 2, "checkpoint_every": 1,
               "stages": [{"env_id": "MiniGrid-Empty-5x5-v0", "frames": 1536, "target": 1.0},
                          {"env_id": "MiniGrid-Empty-6x6-v0", "frames": 512, "target": 1.0}]}


def chain_figures(root: Path, curriculum: Curriculum, arm: str, seeds: int) -> list:
    """Every stage's metrics (timings aside) and held-out results, per seed."""
    out = []
    for seed in range(seeds):
        for directory in stage_dirs(root, arm, seed, curriculum):
            rows = [{k: v for k, v in r.items() if not k.startswith("time_") and k not in ("fps", "wall_time")}
                    for r in RunDir(directory).read_metrics()]
            out.append((rows, json.loads((directory / "summary.json").read_text())["student_after"]))
    return out


def test_curriculum_chains_on_ray_match_chains_in_turn(tmp_path, local_ray):
    curriculum = Curriculum.from_dict(EMPTY_ROOMS)
    run_curriculum(curriculum, ["rl-carry"], 2, tmp_path / "in_turn", quiet=True, threads=1)
    run_curriculum(curriculum, ["rl-carry"], 2, tmp_path / "on_ray", quiet=True, threads=1, workers=2)
    on_ray = chain_figures(tmp_path / "on_ray", curriculum, "rl-carry", 2)
    assert len(on_ray) == 4 and on_ray == chain_figures(tmp_path / "in_turn", curriculum, "rl-carry", 2)
    assert json.loads((tmp_path / "on_ray" / "failures.json").read_text()) == {}


def test_a_curriculum_chain_whose_worker_is_killed_resumes_its_stage(tmp_path, local_ray):
    curriculum = Curriculum.from_dict(EMPTY_ROOMS)
    grid = threading.Thread(target=run_curriculum, args=(curriculum, ["rl"], 2, tmp_path), daemon=True,
                            kwargs=dict(quiet=True, threads=1, workers=2))
    grid.start()
    _kill_one_worker_once(RunDir(stage_dirs(tmp_path, "rl", 0, curriculum)[0]), grid)
    resumed = []
    for seed in (0, 1):
        for directory, frames in zip(stage_dirs(tmp_path, "rl", seed, curriculum), (1536, 512)):
            rows = RunDir(directory).read_metrics()
            assert [r["iteration"] for r in rows] == list(range(1, frames // 128 + 1))  # none lost, none repeated
            resumed.append(bool(json.loads((directory / "summary.json").read_text()).get("resumed_at_frames")))
    assert sum(resumed) == 1  # the killed chain went on from its stage's checkpoint
    assert json.loads((tmp_path / "failures.json").read_text()) == {}
    assert "| stage1_Empty-6x6 | 512, 1.00 | rl |" in (tmp_path / "report.md").read_text()

"""Data loading in worker processes and data-parallel training (coolcolor.train.loader / .distributed).

The data-parallel runs are real: ``accelerate launch`` starts two processes on the CPU, which talk over
gloo. A crash is a kill -9 at an event (the ``train_step`` fault point), never after a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from coolcolor import faults
from coolcolor.cli import main as coolcolor_main
from coolcolor.daemon.testing import child_env
from coolcolor.errors import InputError
from coolcolor.model.checkpoint import load_components
from coolcolor.train.config import TrainConfig
from coolcolor.train.data import WorldSource
from coolcolor.train.distributed import Shard, launch_command
from coolcolor.train.loader import step_batches
from coolcolor.train.trainer import Trainer

STEPS = 4
PER_PROCESS = 2


def settings(out: Path, **kw) -> dict:
    # ef_fraction 0.75 of a global batch of 4: 3 L_EF samples, 2 in the first process's shard, 1 in the second
    values = dict(output=str(out), stage="unet", init_from="preset:tiny", resolution=32, steps=STEPS,
                  batch_size=PER_PROCESS, lr=1e-3, lambda_schedule="constant", lambda_max=0.1, ef_fraction=0.75,
                  checkpoint_every=2, log_every=1, seed=7, threads=1, device="cpu", loader_workers=0)
    values.update(kw)
    return values


def launch(tmp: Path, name: str, processes: int = 2, fault: str | None = None, **kw) -> subprocess.CompletedProcess:
    config = tmp / f"{name}.json"
    config.write_text(json.dumps(settings(tmp / name, **kw)), encoding="utf-8")
    env = child_env({faults.ENV: fault} if fault else {})
    return subprocess.run(launch_command(processes, ["--config", str(config), "--no-progress"]), env=env,
                          capture_output=True, text=True, timeout=600)


TERMS = ("loss", "recon", "ef")
# Measured here: the two curves differ by ≈ 1e-7 relative (float sums in another order); drawing each
# process's noise on its own instead of its rows of the global draw moves them by 2.5–9 %.
TOLERANCE = 1e-5


def curve(run: Path) -> list[dict[str, float]]:
    lines = (run / "log.jsonl").read_text(encoding="utf-8").splitlines()
    return [{k: v[k] for k in ("step", *TERMS)} for v in map(json.loads, lines)]


def terms(history: list[dict[str, float]]) -> list[float]:
    return [h[k] for h in history for k in TERMS]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("dp")
    done = launch(tmp, "two")
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "two"


def batches(workers: int, start: int, stop: int, first: int = 0, size: int = 3) -> list[dict]:
    source = WorldSource(32, seed=3)
    return list(step_batches(source, size, start, stop, workers, torch.device("cpu"), first=first))


def same_batches(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x["rgb"], y["rgb"]) and torch.equal(x["gray"], y["gray"]) and x["captions"] == y["captions"]
        for x, y in zip(a, b, strict=True))


def test_batches_are_the_same_with_0_or_2_workers_and_from_a_resumed_step():
    serial = batches(0, 0, 5)
    assert same_batches(serial, batches(2, 0, 5))
    assert same_batches(serial[3:], batches(2, 3, 5))  # a run resumed at step 3 sees steps 3 and 4 as before
    assert not torch.equal(serial[0]["rgb"], serial[1]["rgb"])  # steps differ: the comparison can fail
    source = WorldSource(32, seed=3)
    assert same_batches(serial[:1], [source.batch(0, 3)])  # what the trainer used before the loader existed


def test_a_shard_is_its_rows_of_the_global_batch():
    whole = batches(0, 0, 2, size=4)
    second = batches(2, 0, 2, first=2, size=2)
    for w, s in zip(whole, second, strict=True):
        assert torch.equal(w["rgb"][2:], s["rgb"]) and w["captions"][2:] == s["captions"]
    generator = torch.Generator().manual_seed(1)
    draw = torch.randn(4, 3, generator=generator)
    generator.manual_seed(1)
    assert torch.equal(Shard(1, 2).randn(2, (3,), generator), draw[2:])


def test_two_processes_follow_the_loss_curve_of_one_with_the_same_global_batch(tmp_path, two_process_run):
    one = Trainer(TrainConfig(**settings(tmp_path / "one", batch_size=2 * PER_PROCESS)))
    one.run(progress=False)
    two = curve(two_process_run)
    assert [h["step"] for h in two] == list(range(1, STEPS + 1))
    assert all(h["ef"] > 0 for h in two)  # L_EF is on: its shards (2 samples and 1) are summed right
    assert terms(two) == pytest.approx(terms(one.history), rel=TOLERANCE)
    recipe = load_components(two_process_run / "final").config.recipe  # the model card's record of the run
    assert (recipe["processes"], recipe["batch_size"], recipe["global_batch"]) == (2, PER_PROCESS, 2 * PER_PROCESS)
    state = torch.load(two_process_run / "checkpoints" / f"step-{STEPS:07d}" / "trainer_state.pt",
                       weights_only=False)
    assert state["processes"] == 2 and state["global_batch"] == 2 * PER_PROCESS


def test_a_killed_two_process_run_resumes_on_the_same_curve(tmp_path, two_process_run):
    # kill -9 both processes after step 3 (the checkpoint of step 2 is on disk, step 3 is lost); the loader
    # runs in worker processes here, while the reference run made its batches in the training processes
    killed = launch(tmp_path, "run", fault=faults.spec("train_step", 3), loader_workers=2)
    assert killed.returncode != 0 and "kill at train_step #3" in killed.stderr
    run = tmp_path / "run"
    assert [p.name for p in sorted((run / "checkpoints").glob("step-*"))] == ["step-0000002"]
    assert not (run / "final").exists()
    resumed = launch(tmp_path, "run", loader_workers=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert curve(run) == curve(two_process_run)


def test_sigterm_to_one_process_stops_both_at_the_same_step_with_a_checkpoint(tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps(settings(tmp_path / "run", checkpoint_every=100)), encoding="utf-8")
    resume = tmp_path / "go"
    env = child_env({faults.ENV: faults.spec("train_step", 2, "pause"), faults.RESUME_ENV: str(resume)})
    proc = subprocess.Popen(launch_command(2, ["--config", str(config), "--no-progress"]), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    paused: list[int] = []
    for line in proc.stderr:  # each process says so when it pauses after its step 2: an event, not a delay
        if "coolcolor fault: pause at train_step #2" in line:
            paused.append(int(line.rsplit("pid ", 1)[1].rstrip(")\n")))
            if len(paused) == 2:
                break
    assert len(paused) == 2
    # one process gets the signal (the handler runs before it can see the resume file); the other learns
    # of it at the next step, so both stop after step 2 instead of waiting on each other for ever
    os.kill(paused[0], signal.SIGTERM)
    resume.touch()
    proc.communicate(timeout=600)
    assert proc.returncode != 0  # stopped, not finished
    run = tmp_path / "run"
    assert [p.name for p in sorted((run / "checkpoints").glob("step-*"))] == ["step-0000002"]
    assert [h["step"] for h in curve(run)] == [1, 2] and not (run / "final").exists()


def test_two_processes_resume_a_one_process_run_with_the_same_global_batch(tmp_path, two_process_run):
    run = tmp_path / "run"
    Trainer(TrainConfig(**settings(run, batch_size=2 * PER_PROCESS, steps=2))).run(progress=False)
    with pytest.raises(InputError, match=r"global batch of 4 \(1 process\(es\) × batch_size 4\); this run has "
                                         r"1 × 2; batch_size 4 keeps it"):
        Trainer(TrainConfig(**settings(run, steps=STEPS))).run(progress=False)
    resumed = launch(tmp_path, "run")  # 2 processes × batch_size 2 from the checkpoint of step 2
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert terms(curve(run)) == pytest.approx(terms(curve(two_process_run)), rel=TOLERANCE)


def test_gpus_without_gpus_is_one_line_and_writes_nothing(tmp_path, capsys):
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has 2 GPUs")
    run = tmp_path / "run"
    code = coolcolor_main(["train", "--gpus", "2", "--output", str(run), "--set", "init_from=preset:tiny"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err == [f"coolcolor train: error: --gpus 2 asked but this machine has {torch.cuda.device_count()} CUDA GPUs"]
    assert not run.exists()


def test_gpus_runs_accelerate_launch_with_the_same_arguments(tmp_path, monkeypatch):
    """What --gpus hands to the launcher (the launch itself is what the two-process tests above run)."""
    import subprocess as sp

    from coolcolor.train import distributed

    started: list[list[str]] = []
    monkeypatch.setattr(distributed, "cuda_gpus", lambda: 2)
    monkeypatch.setattr(sp, "run", lambda command, **kw: started.append(command) or sp.CompletedProcess(command, 0))
    run = str(tmp_path / "run")
    assert coolcolor_main(["train", "--gpus", "2", "--output", run, "--set", "init_from=preset:tiny", "--steps", "9",
                           "--no-progress"]) == 0
    [command] = started
    port = command[command.index("--main_process_port") + 1]
    assert command == launch_command(2, ["--set", "init_from=preset:tiny", "--output", run, "--steps", "9",
                                         "--no-progress"], int(port))
    assert not (tmp_path / "run").exists()  # the launched processes write the run, not this one


def test_the_vae_stage_is_refused_under_several_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(InputError, match="data parallel training .* trains the unet stage"):
        Trainer(TrainConfig(**settings(tmp_path / "run", stage="vae", init_from="")))
    assert not (tmp_path / "run").exists()

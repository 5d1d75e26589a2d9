"""Recoveries end to end, in copies of the tiny project (tests/tiny_project.py) with its data and
vocabularies: a Ray worker killed mid-training, `kill -9` of dvc alone and of a whole `dvc repro`,
and Ctrl-C, each followed by the command that goes on."""
import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest

from tests.conftest import ctrl_c_reaches_it
from tests.tiny_project import DVC, EPOCHS, run, tiny_project, training_copy

pytestmark = pytest.mark.slow  # trainings and dvc repro runs in temporary repositories


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_data):
    """The tiny project with its data and vocabularies: what every training copy starts from."""
    repo = tiny_project(tmp_path_factory.mktemp("project"), shared_data)
    run([*DVC, "repro", "vocab", "char_vocab"], repo)
    return repo


def test_a_killed_worker_is_retried_and_mlflow_gets_one_finished_run(repo, tmp_path):
    copy = training_copy(repo, tmp_path / "copy", ["baseline"], **{"train.seeds": [1]})
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(name, None)
    stage = subprocess.Popen([sys.executable, "-m", "pipeline.stages.train"], cwd=copy, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        killed, deadline = None, time.monotonic() + 300
        while killed is None:  # local Ray's workers are this stage's descendants; kill the one training
            assert stage.poll() is None and time.monotonic() < deadline, stage.stdout.read()
            for process in psutil.Process(stage.pid).children(recursive=True):
                try:
                    if " ".join(process.cmdline()).startswith("ray::train_pair"):
                        time.sleep(2)  # let it get into the training
                        process.kill()
                        killed = process.pid
                        break
                except psutil.Error:
                    pass
            time.sleep(0.2)
        output, _ = stage.communicate(timeout=600)
    finally:
        if stage.poll() is None:  # the test failed: stop the stage (its local Ray goes with it)
            stage.terminate()
            stage.wait(timeout=60)
    assert stage.returncode == 0, output
    client = mlflow.MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ner-char-embeddings").experiment_id])
    assert [(r.info.run_name, r.info.status) for r in runs] == [("baseline-seed1", "FINISHED")]
    assert json.loads((copy / "models/baseline/seed_1/summary.json").read_text())["mlflow_run_id"] == runs[0].info.run_id
    assert len(client.get_metric_history(runs[0].info.run_id, "val_f1")) == EPOCHS  # no epoch logged twice
    assert not list((copy / "models").glob(".*"))  # no staging folder left


def command_of(process: psutil.Process) -> str:
    """Its command line; empty once it has gone (or is a zombie)."""
    try:
        return " ".join(process.cmdline()) if process.status() != psutil.STATUS_ZOMBIE else ""
    except psutil.Error:
        return ""


def test_kill_9_of_dvc_alone_leaves_no_orphan_training(repo, tmp_path):
    """`kill -9` of the dvc process only (not its group): its train stage is told by the kernel that
    its parent died, unwinds like Ctrl-C and takes its local Ray with it; nothing trains on."""
    copy = training_copy(repo, tmp_path / "copy", ["baseline"], **{"train.seeds": [1], "train.epochs": 30})
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(name, None)
    repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train"], cwd=copy, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        while not any(command_of(process).startswith("ray::train_pair") for process in family):
            assert repro.poll() is None and time.monotonic() < deadline, "no training started"
            time.sleep(0.5)
            family = psutil.Process(repro.pid).children(recursive=True)
        repro.kill()
        repro.wait(timeout=30)
        gone, alive = psutil.wait_procs(family, timeout=120)
        assert not [command_of(process) for process in alive if command_of(process)]
    finally:
        for process in family:
            with contextlib.suppress(psutil.Error):
                process.kill()


def running_runs(store: str) -> list[str]:
    """Read-only, with sqlite3: an MLflow client here would race the stage's creation of the store."""
    path = Path(store.removeprefix("sqlite:///"))
    if not path.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)) as database:
            return [row[0] for row in database.execute("SELECT run_uuid FROM runs WHERE status = 'RUNNING'")]
    except sqlite3.OperationalError:  # the stage is still creating the tables
        return []


def test_kill_9_of_the_whole_repro_then_repro_again_loses_nothing_and_leaves_no_run_running(repo, tmp_path):
    """`kill -9` of dvc repro's process group while the driver has a run open (it logs a finished
    training): nothing can close that run then. The next `dvc repro` marks it KILLED, clears the
    staging folder and ends with every pair trained and logged once."""
    # two pairs: two moments with a run open (the driver logs a finished training in well under a second)
    copy = training_copy(repo, tmp_path / "copy", ["baseline"], **{"train.seeds": [1, 2]})
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(name, None)
    store = f"sqlite:///{copy / 'mlflow.db'}"
    repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train"], cwd=copy, env=env, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not running_runs(store):
            assert repro.poll() is None and time.monotonic() < deadline, "the repro ended before any run opened"
            time.sleep(0.01)
        family = psutil.Process(repro.pid).children(recursive=True)  # local Ray may start its own sessions
        os.killpg(repro.pid, signal.SIGKILL)
        for process in family:
            with contextlib.suppress(psutil.Error):
                process.kill()
        repro.wait(timeout=60)
    finally:
        if repro.poll() is None:
            os.killpg(repro.pid, signal.SIGKILL)
    orphans = running_runs(store)
    assert len(orphans) == 1  # what kill -9 leaves: the run the driver had open

    again = run([sys.executable, "-m", "dvc", "repro", "train"], copy)
    assert "was left RUNNING by process" in again.stderr and "marked KILLED" in again.stderr
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("ner-char-embeddings").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED", "KILLED"]  # both pairs, once each
    assert [r.info.run_id for r in runs if r.info.status == "KILLED"] == orphans
    summary = json.loads((copy / "models/baseline/seed_1/summary.json").read_text())
    assert client.get_run(summary["mlflow_run_id"]).info.status == "FINISHED"
    assert not list((copy / "models").glob(".*"))  # no staging folder left
    assert run([sys.executable, "-m", "dvc", "status", "train"], copy).stdout.strip() == \
        "Data and pipelines are up to date."


def test_ctrl_c_during_dvc_repro_train_is_one_line_and_the_next_repro_goes_on(repo, tmp_path):
    """Ctrl-C in the terminal (SIGINT to dvc's whole process group) while a training runs: the
    stage says one line, no traceback; the open run ends FAILED and the next `dvc repro` trains
    what was left."""
    # up to 30 epochs: the trainings are still running when the signal lands, however fast the machine
    copy = training_copy(repo, tmp_path / "copy", ["baseline"], **{"train.seeds": [1, 2], "train.epochs": 30})
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(name, None)
    # --force --no-run-cache: the trainings run, whatever an earlier test left in DVC's caches
    repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--force", "--no-run-cache", "train"], cwd=copy,
                             env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                             preexec_fn=ctrl_c_reaches_it)
    try:
        seen = []
        for line in repro.stdout:  # the first epoch's progress line: trainings are under way
            seen.append(line)
            if re.search(r"epoch +1/", line):
                break
        os.killpg(repro.pid, signal.SIGINT)
        stdout, stderr = repro.communicate(timeout=120)
    finally:
        if repro.poll() is None:
            os.killpg(repro.pid, signal.SIGKILL)
    assert re.search(r"epoch +1/", seen[-1]), "".join(seen) + stdout + stderr  # interrupted mid-training
    assert repro.returncode != 0, "".join(seen) + stdout + stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "interrupted: what had finished is kept and nothing is half-written; run the same command again to go " \
           "on" in stderr
    assert len([line for line in stderr.splitlines() if line.strip()]) <= 3, stderr  # the stage's line and dvc's
    assert not list((copy / "models").glob(".*"))  # no staging folder left
    again = run([sys.executable, "-m", "dvc", "repro", "train"], copy)
    assert "Traceback" not in again.stderr
    for seed in (1, 2):  # both were interrupted mid-training: the next repro trains both
        assert f"baseline seed {seed} done" in again.stdout + again.stderr
        assert (copy / f"models/baseline/seed_{seed}/tagger.keras").is_file()

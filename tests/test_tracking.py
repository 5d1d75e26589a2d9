import errno
import os
import re
import subprocess
import sys

import mlflow
import pytest

from pipeline.errors import PipelineError
from pipeline.tracking import store as tracking
from tests.conftest import REPO_ROOT


def test_store_defaults_to_the_repo_root_and_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_experiment_created_by_a_parallel_worker_in_between_is_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    mlflow.set_tracking_uri(tracking.tracking_uri())
    existing = mlflow.create_experiment(tracking.EXPERIMENT)  # the other worker's
    real_lookup, calls = mlflow.get_experiment_by_name, []

    def lookup_before_the_other_worker(name):  # the first look-up happens before it creates the experiment
        calls.append(name)
        return None if len(calls) == 1 else real_lookup(name)

    monkeypatch.setattr(mlflow, "get_experiment_by_name", lookup_before_the_other_worker)
    assert tracking.start_experiment() == existing
    assert len(calls) == 2


def test_new_local_experiment_keeps_artifacts_in_the_repo(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    experiment_id = tracking.start_experiment()
    location = mlflow.get_experiment(experiment_id).artifact_location
    assert location == (tmp_path / "mlartifacts").as_uri()


def test_runs_left_running_by_a_dead_process_of_this_machine_are_closed_as_killed(tmp_path, monkeypatch):
    """What `kill -9` leaves: a RUNNING run whose process is gone. Runs of live processes and of
    other machines (teammates on a shared server) stay as they are."""
    import socket
    import subprocess
    import sys
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    experiment_id = tracking.start_experiment()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    client = mlflow.MlflowClient()
    host = socket.gethostname()
    runs = {label: client.create_run(experiment_id, tags={tracking.HOST_TAG: where, tracking.PID_TAG: pid}).info.run_id
            for label, where, pid in [("killed", host, gone.stdout.strip()), ("alive", host, str(os.getpid())),
                                      ("teammate", "another-host", gone.stdout.strip())]}
    finished = client.create_run(experiment_id, tags={tracking.HOST_TAG: host, tracking.PID_TAG: gone.stdout.strip()})
    client.set_terminated(finished.info.run_id, "FINISHED")
    tracking.start_experiment()  # what the next stage to run does first
    status = {label: client.get_run(run_id).info.status for label, run_id in runs.items()}
    assert status == {"killed": "KILLED", "alive": "RUNNING", "teammate": "RUNNING"}
    assert client.get_run(finished.info.run_id).info.status == "FINISHED"
    assert tracking.run_tags("train")[tracking.PID_TAG] == str(os.getpid())


def test_a_tag_that_a_parallel_stage_created_in_between_is_set_anyway(tmp_path, monkeypatch):
    """A sweep's stages describe the experiment at once; on PostgreSQL the slower one's insert of the
    same new tag fails with a unique violation (seen in the e2e sweep). The second try updates it."""
    from mlflow.exceptions import MlflowException
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    experiment_id = tracking.start_experiment()
    real, calls = mlflow.MlflowClient.set_experiment_tag, []

    def other_stage_first(self, experiment, key, value):
        calls.append(key)
        if len(calls) == 1:
            real(self, experiment, key, "the other stage's value")
            raise MlflowException('BAD_REQUEST: (psycopg.errors.UniqueViolation) duplicate key value violates '
                                  'unique constraint "experiment_tag_pk"')
        return real(self, experiment, key, value)

    monkeypatch.setattr(mlflow.MlflowClient, "set_experiment_tag", other_stage_first)
    tracking.set_experiment_tag(experiment_id, "some.tag", "ours")
    assert calls == ["some.tag", "some.tag"]
    assert mlflow.get_experiment(experiment_id).tags["some.tag"] == "ours"
    monkeypatch.setattr(mlflow.MlflowClient, "set_experiment_tag", lambda *args: (_ for _ in ()).throw(
        MlflowException("RESOURCE_DOES_NOT_EXIST: no experiment")))
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):  # other errors are not retried
        tracking.set_experiment_tag(experiment_id, "some.tag", "ours")


def test_a_damaged_store_is_one_line_whose_advice_works(tmp_path, monkeypatch):
    """A cut mlflow.db: one line naming the file and the way out; followed, the next run starts afresh."""
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    tracking.start_experiment()
    with open(store, "r+b") as file:
        file.truncate(1024)
    with pytest.raises(PipelineError) as error:
        tracking.start_experiment()
    assert str(error.value) == (f"{store}: the MLflow store cannot be read (database disk image is malformed); if "
                                f"it is damaged, move it aside (mv {store} {store}.damaged) and run again to start a "
                                "new store, or restore it from a backup")
    assert subprocess.run(["mv", str(store), f"{store}.damaged"]).returncode == 0  # the advice, as printed
    again = subprocess.run([sys.executable, "-c", "from pipeline.tracking.store import start_experiment; "
                            "print(start_experiment())"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.strip(), again.stderr  # the run again: a new store
    assert store.is_file()


def test_a_full_disk_while_logging_a_tagger_is_one_line_and_the_run_ends_failed(tmp_path, monkeypatch):
    """The artifact store fills up while MLflow copies the tagger (faked at MLflow's call: filling a
    real disk needs a mount): one line naming the store, and no run left RUNNING."""
    from pipeline.params import load_params
    from pipeline.tracking import models, runs
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(mlflow.pyfunc, "log_model", no_room)
    tracking.start_experiment()
    with pytest.raises(PipelineError) as error:
        with runs.training_run("char_cnn", 7, load_params(REPO_ROOT / "params.yaml"), {}, {}, 0.0):
            models.log_tagger(REPO_ROOT / "tests/fixtures/legacy_tagger/tagger.keras", "char_cnn", register=False)
    assert re.fullmatch(rf"{tmp_path}/mlartifacts/(\d+/)?[0-9a-f]+/artifacts: no space left on the device logging the "
                        r"tagger to MLflow; nothing of this step was replaced; free some space and run it again",
                        str(error.value)), str(error.value)
    run, = mlflow.MlflowClient().search_runs([mlflow.get_experiment_by_name(tracking.EXPERIMENT).experiment_id])
    assert run.info.status == "FAILED"

"""The MLflow store: where it is (MLFLOW_TRACKING_URI or the project's mlflow.db), its
experiments, the tags that tie a run to its code and process, and the clean-up of runs whose
process died. Everything the pipeline tells MLflow goes through pipeline/tracking/:

    store.py       the store, experiments, run tags, abandoned runs
    experiment.py  what the UI shows as it opens: description, saved runs view, links
    runs.py        one run per training, per search and per search trial
    models.py      the tagger as a pyfunc model, the registry and its aliases
    datasets.py    the data splits as run inputs
    scores.py      what `evaluate` logs: the summary run and each seed's scores
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from contextlib import contextmanager

import mlflow
import requests
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import DatabaseError

from pipeline.errors import PipelineError
from pipeline.files import raise_if_no_room
from pipeline.layout import project_root
from pipeline.params import env_seconds

# MLflow's notes on every logged model (the cloudpickle caution, "validating input example"),
# its schema-migration notices and its download bars would bury the stages' own progress lines
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # "View run ... at" per run


EXPERIMENT = "ner-char-embeddings"
SEARCH_EXPERIMENT = "ner-search"  # pipeline/cli/search.py: one parent run per search, a child per (point, seed)
STUDY_EXPERIMENT = "ner-study"  # pipeline/cli/study.py: one summary run per study, over its settings' experiments
SUMMARY_RUN = "char-gain"
DESCRIPTION = "mlflow.note.content"  # the experiment's and each run's description (markdown)
HOST_TAG, PID_TAG = "pipeline.host", "pipeline.pid"  # the process writing a run: closed if it dies mid-run
HEALTH_TIMEOUT_ENV = "NER_TRACKING_TIMEOUT"  # seconds the health check of a tracking server waits (10)
SUMMARY_TAG = "summary_run"  # on each seed run: the id of the summary run of its last evaluation


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def start_experiment(name: str = EXPERIMENT) -> str:
    """Point MLflow at the store and make sure the experiment exists; return its id.

    With a local store, artifacts go to <repo root>/mlartifacts (not the current folder), so
    runs started from any working copy keep their artifacts in one place.
    """
    uri = tracking_uri()
    check_server(uri)
    mlflow.set_tracking_uri(uri)
    experiment = read_experiment(uri, name)
    if experiment is None:
        local_store = uri.startswith(("sqlite:", "file:")) or "://" not in uri
        artifacts = (project_root() / "mlartifacts").as_uri() if local_store else None
        try:
            experiment_id = mlflow.create_experiment(name, artifact_location=artifacts)
        except MlflowException:
            # another worker of a parallel sweep created it in between
            experiment = mlflow.get_experiment_by_name(name)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    close_abandoned_runs(experiment_id)
    return experiment_id


@contextmanager
def room_for_artifacts(doing: str):
    """A full disk (or quota) while MLflow writes artifacts: one line naming the artifact store, and the
    exception goes on through the run's block, which ends the run FAILED (not RUNNING)."""
    try:
        yield
    except OSError as error:
        where = mlflow.get_artifact_uri() if mlflow.active_run() else tracking_uri()
        raise_if_no_room(error, where.removeprefix("file://"), doing)
        raise


def read_experiment(uri: str, name: str):
    """The experiment `name` (None if absent): the first read of the store, where a damaged SQLite
    file shows, named with the way out rather than SQLAlchemy's traceback."""
    try:
        return mlflow.get_experiment_by_name(name)
    except (DatabaseError, MlflowException) as error:
        database_error = database_error_in(error)
        if database_error is None or not uri.startswith("sqlite:///"):
            raise
        path = uri.removeprefix("sqlite:///")  # sqlite:////abs/mlflow.db: the path is /abs/mlflow.db
        cause = str(database_error.orig or database_error).splitlines()[0]
        raise PipelineError(f"{path}: the MLflow store cannot be read ({cause}); if it is damaged, move it aside "
                            f"(mv {path} {path}.damaged) and run again to start a new store, or restore it from a "
                            "backup") from None


def database_error_in(error: BaseException) -> DatabaseError | None:
    """The SQL error behind `error` (MLflow wraps it once the store is open), if there is one."""
    while error is not None and not isinstance(error, DatabaseError):
        error = error.__cause__ or error.__context__
    return error


def close_abandoned_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the runs left RUNNING by a process of this machine that is gone (kill -9, a
    crash, a power cut): a run can only end in its own process, so nothing else would end it.
    Runs of other machines (a team server) and of live processes are left alone."""
    client = mlflow.MlflowClient()
    running = client.search_runs([experiment_id], max_results=1000, filter_string=(
        f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{socket.gethostname()}'"))
    closed = []
    for run in running:
        pid = int(run.data.tags.get(PID_TAG) or 0)
        if pid and not process_exists(pid):
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
            print(f"mlflow: run {run.info.run_name} ({run.info.run_id}) was left RUNNING by process {pid}, which is "
                  "gone; marked KILLED", file=sys.stderr)
    return closed


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True


def set_experiment_tag(experiment_id: str, key: str, value: str) -> None:
    """MLflow's set_experiment_tag, safe when parallel stages (a sweep) set the same new tag at once:
    on a SQL store the slower one's insert fails on the tag's key, and once the tag exists a second
    try updates it."""
    client = mlflow.MlflowClient()
    try:
        client.set_experiment_tag(experiment_id, key, value)
    except MlflowException as error:
        if not any(sign in str(error) for sign in ("UniqueViolation", "UNIQUE constraint", "Duplicate entry",
                                                   "duplicate key")):
            raise
        client.set_experiment_tag(experiment_id, key, value)


def check_server(uri: str) -> None:
    """Fail in seconds, with one line, when a tracking server is down (MLflow's client would
    retry for minutes before its traceback)."""
    if uri.startswith(("http://", "https://")):
        try:
            requests.get(uri.rstrip("/") + "/health", timeout=env_seconds(HEALTH_TIMEOUT_ENV, (10,))[0])
        except requests.RequestException as error:
            raise PipelineError(f"MLFLOW_TRACKING_URI={uri}: the tracking server does not answer "
                                f"({type(error).__name__}); start it, or unset MLFLOW_TRACKING_URI to use the "
                                "local store") from None


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip()


def run_tags(stage: str) -> dict[str, str]:
    """Tags linking a run to its code (git commit), DVC stage/experiment and the process writing it."""
    tags = {"dvc_stage": os.environ.get("DVC_STAGE") or stage, HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    if commit := git_commit():
        tags["mlflow.source.git.commit"] = commit
    tags["dvc_experiment"] = os.environ.get("DVC_EXP_NAME") or "workspace"  # set by `dvc exp run`
    return tags


def flat_params(params, prefix: str = "") -> dict[str, object]:
    """Nested params -> {"model.cell": "lstm", ...} for mlflow.log_params."""
    flat = {}
    for key, value in (params.model_dump() if hasattr(params, "model_dump") else params).items():
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

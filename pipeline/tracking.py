"""MLflow set-up shared by the stages: the store, the experiment, and the tags that tie a run to DVC and git."""
from __future__ import annotations

import os
import subprocess

import mlflow
from mlflow.exceptions import MlflowException

from pipeline.paths import project_root

EXPERIMENT = "ner-char-embeddings"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def start_experiment() -> str:
    """Point MLflow at the store and make sure the experiment exists; return its id.

    With a local store, artifacts go to <repo root>/mlartifacts (not the current folder), so
    runs started from any working copy keep their artifacts in one place.
    """
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        local_store = uri.startswith(("sqlite:", "file:")) or "://" not in uri
        artifacts = (project_root() / "mlartifacts").as_uri() if local_store else None
        try:
            experiment_id = mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
        except MlflowException:
            # another worker of a parallel sweep created it in between
            experiment = mlflow.get_experiment_by_name(EXPERIMENT)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip()


def run_tags(stage: str) -> dict[str, str]:
    """Tags linking a run to its code (git commit) and DVC stage/experiment."""
    tags = {"dvc_stage": os.environ.get("DVC_STAGE") or stage}
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

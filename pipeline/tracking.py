"""Everything the pipeline tells MLflow, in one place: the store and experiment, one run per
trained (model, seed) with its params, learning curve and tagger, the evaluation's scores, and
a summary run per evaluation holding the gains, with every seed's run nested under it.

Each tagger is logged once, as a pyfunc model named `tagger` (raw text in; tokens, tags and
entity spans out) whose artifacts hold the Keras file."""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
import requests
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from pipeline.errors import PipelineError
from pipeline.evaluation import HEADLINE, Evaluation, gain_key
from pipeline.layout import project_root
from pipeline.params import Params

EXPERIMENT = "ner-char-embeddings"
SUMMARY_RUN = "char-gain"
EXAMPLES = ["Peter Blackburn lives in Berlin and works for the European Commission.",
            "EU rejects German call to boycott British lamb."]


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def start_experiment() -> str:
    """Point MLflow at the store and make sure the experiment exists; return its id.

    With a local store, artifacts go to <repo root>/mlartifacts (not the current folder), so
    runs started from any working copy keep their artifacts in one place.
    """
    uri = tracking_uri()
    check_server(uri)
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


def check_server(uri: str) -> None:
    """Fail in seconds, with one line, when a tracking server is down (MLflow's client would
    retry for minutes before its traceback)."""
    if uri.startswith(("http://", "https://")):
        try:
            requests.get(uri.rstrip("/") + "/health", timeout=10)
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


def registered_name(model: str) -> str:
    """The model registry name of a tagger: ner-baseline, ner-char-cnn, ..."""
    return "ner-" + model.replace("_", "-")


# training -----------------------------------------------------------------------------------

@contextmanager
def training_run(model: str, seed: int, params: Params, sizes: dict[str, int], tags: dict[str, str],
                 started: float):
    """An MLflow run for one (model, seed) training that began at `started` (time.time()), with every
    param it trained with and where it ran; yields its id. An error inside marks the run FAILED."""
    tags = {**run_tags("train"), **tags, "model": model, "seed": str(seed), "mlflow.runName": f"{model}-seed{seed}"}
    run = mlflow.MlflowClient().create_run(mlflow.get_experiment_by_name(EXPERIMENT).experiment_id,
                                           start_time=int(started * 1000), tags=tags)
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_params({**flat_params(params.model_dump(exclude={"models", "model", "cluster"})),
                           **flat_params(params.tagger(model), "model."), "model_name": model, "seed": seed,
                           **sizes})
        yield run.info.run_id


def log_history(history: list[dict], started: float) -> None:
    """The learning curve, one step per epoch, stamped with the time each epoch ended."""
    ended = started
    for row in history:
        ended += row["seconds"]
        mlflow.log_metrics({"train_loss": row["train_loss"], "val_f1": row["dev_f1"],
                            "epoch_seconds": row["seconds"]}, step=int(row["epoch"]), timestamp=int(ended * 1000))


def log_training_result(best_epoch: int, seconds: float) -> None:
    mlflow.log_metrics({"best_epoch": best_epoch, "train_seconds": seconds})


class TaggerModel(mlflow.pyfunc.PythonModel):
    """The tagger as an MLflow pyfunc model: a column `text` of raw sentences in; per sentence the
    tokens, tags and entity spans out (the Python API's structures). Served with
    `mlflow models serve -m <uri> --env-manager local`."""

    def load_context(self, context):
        from pipeline.tagger import Tagger
        self.tagger = Tagger.from_file(context.artifacts["tagger"])

    def predict(self, context, model_input, params=None):
        texts = model_input["text"].tolist() if isinstance(model_input, pd.DataFrame) else list(model_input)
        # a missing value (None, NaN) is no text: it comes back skipped, not tagged as the word "nan"
        return [result.to_dict() for result in self.tagger.tag(["" if is_missing(text) else str(text)
                                                                 for text in texts])]


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def log_tagger(tagger_file: Path, model: str, register: bool) -> None:
    """Log the tagger as the pyfunc model "tagger" of the active run (and register it if asked)."""
    import keras
    import tensorflow as tf

    import pipeline
    from pipeline.tagger import Tagger
    requirements = [f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}",
                    f"mlflow=={mlflow.__version__}", f"seqeval=={version('seqeval')}"]
    examples = pd.DataFrame({"text": EXAMPLES})
    outputs = [result.to_dict() for result in Tagger.from_file(tagger_file).tag(EXAMPLES)]
    mlflow.pyfunc.log_model(
        name="tagger", python_model=TaggerModel(), artifacts={"tagger": str(tagger_file)},
        code_paths=[str(Path(pipeline.__file__).parent)], signature=infer_signature(examples, outputs),
        input_example=examples, pip_requirements=requirements,
        registered_model_name=registered_name(model) if register else None)


def download_model(uri: str) -> Path:
    """The local folder of an MLflow model URI (runs:/..., models:/...), from the project's store."""
    check_server(tracking_uri())
    mlflow.set_tracking_uri(tracking_uri())
    try:
        return Path(mlflow.artifacts.download_artifacts(uri))
    except (MlflowException, OSError) as error:
        raise PipelineError(f"{uri}: cannot load the MLflow model ({error})") from None


# evaluation ---------------------------------------------------------------------------------

def existing_run_ids(evaluation: Evaluation) -> dict[tuple[str, int], str]:
    """The training runs of the evaluated seeds that are in this store; the others are reported
    (a model trained with another store, say) and left out of the per-run logging."""
    found = {}
    for run in (run for model_runs in evaluation.runs.values() for run in model_runs):
        run_id = run.summary["mlflow_run_id"]
        try:
            mlflow.get_run(run_id)
            found[run.model, run.seed] = run_id
        except MlflowException:
            print(f"warning: MLflow run {run_id} of {run.model} seed {run.seed} is not in "
                  f"{mlflow.get_tracking_uri()}; its scores are only in the summary run", file=sys.stderr)
    return found


def log_evaluation(evaluation: Evaluation, figures: list[Path], reports: list[Path]) -> str:
    """Each seed's scores and the figures on its training run; one summary run with the gains and
    the reports, every seed's run nested under it. Returns the summary run's id."""
    start_experiment()
    run_ids = existing_run_ids(evaluation)
    for (model, seed), run_id in run_ids.items():
        with mlflow.start_run(run_id=run_id):
            for split in evaluation.splits:
                result = evaluation.scores[split, model, seed]
                mlflow.log_metrics({f"{split}_{key}": result[key] for key in HEADLINE})
                mlflow.log_metrics({f"{split}_f1_{t}": s["f1"] for t, s in result["per_type"].items()})
            for figure in figures:
                mlflow.log_artifact(str(figure), "figures")
    metrics = evaluation.metrics
    with mlflow.start_run(run_name=SUMMARY_RUN, tags={**run_tags("evaluate"), "model": "comparison"}) as summary:
        mlflow.log_params({"seeds": ",".join(map(str, evaluation.seeds)), "n_seeds": len(evaluation.seeds),
                           "models": ",".join(evaluation.models),
                           "compare": ",".join(gain_key(a, b) for a, b in evaluation.comparisons)})
        for split in evaluation.splits:
            for name in evaluation.models:
                mlflow.log_metrics({f"{name}_{split}_f1_mean": metrics[name][split]["seeds"]["mean"],
                                    f"{name}_{split}_f1_std": metrics[name][split]["seeds"]["std"]})
            gains = {f"gain_{key}": by_split[split] for key, by_split in metrics["gains"].items()}
            if "char_gain" in metrics:
                gains["char_gain"] = metrics["char_gain"][split]
            for prefix, gain in gains.items():
                mlflow.log_metrics({f"{prefix}_{split}": gain["f1"], f"{prefix}_{split}_ci95_low": gain["ci95"][0],
                                    f"{prefix}_{split}_ci95_high": gain["ci95"][1],
                                    f"{prefix}_{split}_std": gain["seeds"]["std"],
                                    f"{prefix}_{split}_p_value": gain["p_value"]})
        for path in [*reports, *figures]:
            mlflow.log_artifact(str(path), "figures" if path.suffix == ".png" else None)
    client = mlflow.MlflowClient()
    for run_id in run_ids.values():
        client.set_tag(run_id, "mlflow.parentRunId", summary.info.run_id)
    return summary.info.run_id

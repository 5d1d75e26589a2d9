"""Everything the pipeline tells MLflow, in one place: the store and experiment, one run per
trained (model, seed) with its params, learning curve and tagger, the evaluation's scores, and
a summary run per evaluation holding the gains, and what makes the UI show the answer as it
opens (experiment kind and description, run descriptions, datasets, a saved runs view).

Each tagger is logged once, as a pyfunc model named `tagger` (raw text in; tokens, tags and
entity spans out) whose artifacts hold the Keras file."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
import requests
from mlflow.entities import DatasetInput, InputTag, Metric
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from pipeline.datasets import DATASETS, is_url
from pipeline.errors import PipelineError
from pipeline.evaluation import CHAR_GAIN, HEADLINE, Evaluation, gain_key
from pipeline.layout import MANIFEST_FILE, project_root
from pipeline.params import DataParams, Params, env_seconds
from pipeline.report import format_p, headline_markdown

# MLflow's notes on every logged model (the cloudpickle caution, "validating input example"),
# its schema-migration notices and its download bars would bury the stages' own progress lines
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # "View run ... at" per run

EXPERIMENT = "ner-char-embeddings"
SEARCH_EXPERIMENT = "ner-search"  # pipeline/search.py: one parent run per search, a child per (point, seed)
SUMMARY_RUN = "char-gain"
# MLflow 3 opens an experiment on its GenAI overview unless it is tagged as model training
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
DESCRIPTION = "mlflow.note.content"  # the experiment's and each run's description (markdown)
SAVED_VIEW = "char-gain"  # the runs view with the scores as columns: ?viewStateShareKey=char-gain
SAVED_VIEW_TAG = "mlflow.sharedViewState."
HOST_TAG, PID_TAG = "pipeline.host", "pipeline.pid"  # the process writing a run: closed if it dies mid-run
HEALTH_TIMEOUT_ENV = "NER_TRACKING_TIMEOUT"  # seconds the health check of a tracking server waits (10)
SUMMARY_TAG = "summary_run"  # on each seed run: the id of the summary run of its last evaluation
# MLflow 3.17's UI opens on its GenAI pages unless the browser chose "Model training" (its sidebar
# switch) or the URL says so: links into the UI carry this query
MODEL_TRAINING_QUERY = "workflowType=machine_learning"
EXPERIMENT_DESCRIPTION = """\
{answer}

**What character-level embeddings add to an RNN named-entity tagger**, on CoNLL-2003 English.
Every tagger shares the word embedding (GloVe 6B 50-d by default), the casing feature, the
bidirectional RNN and the CRF; they differ only in the character encoder: `baseline` has none,
`char_cnn` adds a char CNN (Ma & Hovy 2016), `char_lstm` a char BiLSTM (Lample et al. 2016).
Each run `<model>-seed<n>` trains one tagger with one seed (train split; early stopping on dev);
its description gives its F1 on each split.

Each evaluation adds a `char-gain` run: `char_gain_test` = F1(char_cnn) - F1(baseline) on test,
the mean over seeds, with its 95% paired bootstrap interval (`_ci95_low`, `_ci95_high`) and
randomization `_p_value`; the same for every compared pair as `gain_<a>_vs_<b>_<split>`. An
interval that excludes 0 is a gain beyond the noise of a finite test set. Its description holds
the table; its artifacts the full report, the gain per group of entities (`breakdown.json`,
`figures/breakdown.png`) and the figures.

[Open the runs with these scores as columns]({view_link}) (or *Views* > *What the characters add*
above the runs table).
"""
NOT_EVALUATED = "*No evaluation yet: `dvc repro` ends with one, and its answer appears here.*"
EXAMPLES = ["Peter Blackburn lives in Berlin and works for the European Commission.",
            "EU rejects German call to boycott British lamb."]


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
    experiment = mlflow.get_experiment_by_name(name)
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
    close_abandoned_runs(experiment_id)
    if name == EXPERIMENT and DESCRIPTION not in mlflow.get_experiment(experiment_id).tags:
        describe_experiment(experiment_id, NOT_EVALUATED)
    return experiment_id


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


def describe_experiment(experiment_id: str, answer: str) -> None:
    """Mark the experiment as model training and describe it, the latest answer first (the line the
    UI shows above the runs)."""
    set_experiment_tag(experiment_id, *EXPERIMENT_KIND)
    view_link = f"#/experiments/{experiment_id}/runs?{MODEL_TRAINING_QUERY}&viewStateShareKey={SAVED_VIEW}"
    set_experiment_tag(experiment_id, DESCRIPTION, EXPERIMENT_DESCRIPTION.format(answer=answer, view_link=view_link))


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


def answer_line(evaluation: Evaluation) -> str:
    """The char gain (or the first compared pair's) on the figure split, in one line."""
    a, b = CHAR_GAIN if CHAR_GAIN in evaluation.comparisons else evaluation.comparisons[0]
    split, metrics = evaluation.figure_split, evaluation.metrics
    gain = metrics["gains"][gain_key(a, b)][split]
    return (f"**{b} vs {a} on {split}: {gain['f1']:+.2f} F1 [{gain['ci95'][0]:+.2f}, {gain['ci95'][1]:+.2f}], "
            f"p = {format_p(gain['p_value'])}** (mean over {len(evaluation.seeds)} seeds: {a} "
            f"{metrics[a][split]['f1']:.2f}, {b} {metrics[b][split]['f1']:.2f}; latest evaluation, DVC experiment "
            f"`{run_tags('evaluate')['dvc_experiment']}`)")


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


# search -------------------------------------------------------------------------------------

@contextmanager
def search_run(name: str, model: str, spec: dict):
    """The parent run of one search (in the active experiment); yields its id. The search file is
    an artifact; an error inside marks the run FAILED."""
    tags = {**run_tags("search"), "mlflow.runName": f"search-{name}", "search": name, "model": model}
    with mlflow.start_run(tags=tags) as run:
        mlflow.log_params({"search": name, "model": model, "seeds": json.dumps(spec["seeds"]),
                           "points": len(spec["points"])})
        mlflow.log_dict(spec, "search.json")
        yield run.info.run_id


def log_search_trial(parent_id: str, point: str, seed: int, params: Params, model: str, trained) -> str:
    """A finished (point, seed) training as a child run of the search: the point's changes as tags,
    every param, its learning curve and best dev F1. Returns the run id."""
    experiment_id = mlflow.get_run(parent_id).info.experiment_id
    tags = {**run_tags("search"), **trained.worker, "mlflow.parentRunId": parent_id, "point": point,
            "model": model, "seed": str(seed), "mlflow.runName": f"{point}-seed{seed}"}
    run = mlflow.MlflowClient().create_run(experiment_id, start_time=int(trained.started * 1000), tags=tags)
    with mlflow.start_run(run_id=run.info.run_id, nested=True):
        mlflow.log_params({**flat_params(params.model_dump(exclude={"models", "model", "cluster"})),
                           **flat_params(params.tagger(model), "model."), "model_name": model, "seed": seed})
        log_history(trained.history, trained.started)
        best = max(trained.history, key=lambda row: row["dev_f1"])
        mlflow.log_metrics({"best_dev_f1": best["dev_f1"]})
        log_training_result(best["epoch"], trained.seconds)
    return run.info.run_id


def log_search_ranking(parent_id: str, ranking: list[dict]) -> None:
    """The search's answer on its parent run: the best point's mean dev F1 and the ranking table."""
    client = mlflow.MlflowClient()
    client.log_metric(parent_id, "best_dev_f1_mean", ranking[0]["dev_f1_mean"])
    client.set_tag(parent_id, "best_point", ranking[0]["point"])
    table = pd.DataFrame([{"point": row["point"], "dev_f1_mean": row["dev_f1_mean"], "dev_f1_std": row["dev_f1_std"],
                           "train_seconds_mean": row["train_seconds_mean"], "changes": json.dumps(row["changes"])}
                          for row in ranking])
    client.log_table(parent_id, table, "ranking.json")
    lines = ["| point | mean dev F1 | std | seconds per training | changes |", "|---|---|---|---|---|"]
    lines += [f"| {row['point']} | {row['dev_f1_mean']:.2f} | {row['dev_f1_std'] or ''} | {row['train_seconds_mean']:.0f} "
              f"| `{json.dumps(row['changes'])}` |" for row in ranking]
    client.set_tag(parent_id, DESCRIPTION, "\n".join(lines))


def log_history(history: list[dict], started: float) -> None:
    """The learning curve, one step per epoch, stamped with the time each epoch ended."""
    ended = started
    for row in history:
        ended += row["seconds"]
        mlflow.log_metrics({"train_loss": row["train_loss"], "val_f1": row["dev_f1"],
                            "learning_rate": row["learning_rate"], "epoch_seconds": row["seconds"]}, step=int(row["epoch"]), timestamp=int(ended * 1000))


def log_training_result(best_epoch: int, seconds: float) -> None:
    mlflow.log_metrics({"best_epoch": best_epoch, "train_seconds": seconds})


# MLflow warns on stderr, as it creates the class, that `predict` has no type hints (it turns the
# warning filter back on for that), on every command that imports this module: the signature is
# inferred from examples instead (log_tagger), so the notice is noise
with contextlib.redirect_stderr(io.StringIO()):
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

def breakdown_table(evaluation: Evaluation) -> pd.DataFrame:
    """The breakdown as one row per (split, dimension, group, pair), for the summary run's table
    `breakdown.json`. Not metrics: MLflow's chart view puts any prefixed section of metrics above
    the headline ones, and 150 one-bar charts would bury the answer."""
    rows = []
    for split in evaluation.splits:
        for dimension, groups in evaluation.metrics["breakdown"][split].items():
            for group, result in groups.items():
                for pair, gain in result["gains"].items():
                    rows.append({"split": split, "dimension": dimension, "group": group, "entities": result["entities"],
                                 "comparison": pair, "gain": gain["f1"], "ci95_low": gain["ci95"][0],
                                 "ci95_high": gain["ci95"][1], "p_value": gain["p_value"],
                                 **{f"f1_{model}": f1 for model, f1 in result["f1"].items()}})
    return pd.DataFrame(rows)


def existing_runs(evaluation: Evaluation) -> dict[tuple[str, int], mlflow.entities.Run]:
    """The training runs of the evaluated seeds that are in this store; the others are reported
    (a model trained with another store, say) and left out of the per-run logging."""
    found = {}
    for run in (run for model_runs in evaluation.runs.values() for run in model_runs):
        run_id = run.summary["mlflow_run_id"]
        try:
            found[run.model, run.seed] = mlflow.get_run(run_id)
        except MlflowException:
            print(f"warning: MLflow run {run_id} of {run.model} seed {run.seed} is not in "
                  f"{mlflow.get_tracking_uri()}; its scores are only in the summary run", file=sys.stderr)
    return found


SPLIT_CONTEXTS = {"train": "training", "dev": "validation"}  # the others: "evaluation"


def split_dataset(split: str, data: DataParams) -> mlflow.data.meta_dataset.MetaDataset:
    """A split as an MLflow dataset: `<dataset>/<split>` (with `[:N]` under data.limit), the digest
    the start of the SHA-256 that `download` checked (the full one is the input's `sha256` tag), the
    source its public URL (or the custom file)."""
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    location = DATASETS[data.dataset][split].url if data.dataset in DATASETS else data.files[split]
    source = HTTPDatasetSource(location) if is_url(location) else LocalArtifactDatasetSource(location)
    name = f"{data.dataset}/{split}" + (f"[:{data.limit_of(split)}]" if data.limit_of(split) else "")
    return MetaDataset(source, name=name, digest=split_manifest(split)["sha256"][:DIGEST_CHARS])


DIGEST_CHARS = 12  # MLflow keeps at most 36 characters of a digest


def split_manifest(split: str) -> dict:
    return json.loads(MANIFEST_FILE.read_text(encoding="utf-8"))[split]


def dataset_inputs(splits: list[str], data: DataParams) -> list[DatasetInput]:
    """The splits as run inputs (train: training, dev: validation, the others: evaluation)."""
    return [DatasetInput(split_dataset(split, data)._to_mlflow_entity(),
                         [InputTag(MLFLOW_DATASET_CONTEXT, SPLIT_CONTEXTS.get(split, "evaluation")),
                          InputTag("sha256", split_manifest(split)["sha256"]), InputTag("split", split)])
            for split in splits]


def run_link(experiment_id: str, run_id: str) -> str:
    """A link to a run that works in any MLflow UI's markdown (descriptions of runs and models)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def seed_run_description(run: mlflow.entities.Run, trained: dict, scores: dict[str, dict], summary_link: str) -> str:
    encoder = run.data.params.get("model.char_encoder", "?")
    splits = ", ".join(f"{split} F1 {result['f1']:.2f}" for split, result in scores.items())
    return (f"**{run.data.tags.get('model')}** (char encoder: {encoder}), seed {run.data.tags.get('seed')}: "
            f"{splits}. Best dev epoch {trained['best_epoch']} of {trained['epochs_run']}, trained in "
            f"{trained['train_seconds'] / 60:.1f} min. Gains over all seeds: [{SUMMARY_RUN}]({summary_link}).")


def save_runs_view(experiment_id: str, evaluation: Evaluation) -> None:
    """A saved view of the runs table (the UI's *Views* menu, also opened by ?viewStateShareKey=):
    the datasets, gains and F1 as columns. MLflow keeps saved views as experiment
    tags; the default columns of its runs table cannot be set."""
    gains = ["char_gain_test"] if "char_gain" in evaluation.metrics else []
    gains += [f"gain_{gain_key(a, b)}_test" for a, b in evaluation.comparisons]
    metrics = [*gains[:1], *(f"{gains[0]}{suffix}" for suffix in ("_ci95_low", "_ci95_high", "_p_value")),
               *gains[1:], *(f"{split}_f1" for split in evaluation.splits)] if gains else []
    columns = ["attributes.`Dataset`", *(f"metrics.`{m}`" for m in metrics)]
    state = {"selectedColumns": columns}
    now = int(time.time() * 1000)
    envelope = {"name": "What the characters add", "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
    set_experiment_tag(experiment_id, SAVED_VIEW_TAG + SAVED_VIEW, json.dumps(envelope))


def set_aliases(evaluation: Evaluation, runs: dict[tuple[str, int], mlflow.entities.Run], summary_link: str) -> None:
    """In the model registry, alias `champion` the version of the best tagger on dev (mean dev F1
    over seeds) and `challenger` those of the others; each alias points at the model's best seed
    on dev. Models that are not registered (mlflow.register: false) are skipped."""
    client, metrics = mlflow.MlflowClient(), evaluation.metrics
    ranking = sorted(evaluation.models, key=lambda model: -metrics[model]["dev"]["f1"])
    for rank, model in enumerate(ranking):
        seeds = metrics[model]["dev"]["seeds"]["per_seed"]
        best_seed = max(evaluation.seeds, key=lambda seed: seeds[str(seed)])
        run = runs.get((model, best_seed))
        name = registered_name(model)
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run.info.run_id}'") if run else []
        if not versions:
            continue
        alias, other = ("champion", "challenger") if rank == 0 else ("challenger", "champion")
        client.set_registered_model_alias(name, alias, versions[0].version)
        if other in client.get_registered_model(name).aliases:
            client.delete_registered_model_alias(name, other)
        client.update_registered_model(name, description=(
            f"Tagger `{model}`: `{alias}` of the last evaluation ({rank + 1} of {len(ranking)} by mean dev F1, "
            f"{metrics[model]['dev']['f1']:.2f}). The alias points at version {versions[0].version}, seed {best_seed}, "
            f"the best seed on dev. Scores and gains: [{SUMMARY_RUN} run]({summary_link})."))


def log_evaluation(evaluation: Evaluation, figures: list[Path], reports: list[Path], data: DataParams) -> str:
    """One summary run with the gains, the datasets and the reports; each seed's scores, datasets,
    description and the figures on its training run (tagged with the summary's id; not nested under
    it, since the UI collapses nested runs and hides them from its charts); the runs view, the
    champion/challenger aliases of registered taggers, and the answer atop the experiment's
    description. Returns the summary run's id."""
    experiment_id = start_experiment()
    runs = existing_runs(evaluation)
    metrics = evaluation.metrics
    with mlflow.start_run(run_name=SUMMARY_RUN, tags={**run_tags("evaluate"), "model": "comparison",
                                                      DESCRIPTION: headline_markdown(evaluation)}) as summary:
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
        mlflow.log_table(breakdown_table(evaluation), "breakdown.json")
        for path in [*reports, *figures]:
            mlflow.log_artifact(str(path), "figures" if path.suffix == ".png" else None)
    summary_link = run_link(experiment_id, summary.info.run_id)
    client = mlflow.MlflowClient()
    client.log_inputs(summary.info.run_id, dataset_inputs(evaluation.splits, data))
    now = int(time.time() * 1000)
    for (model, seed), run in runs.items():
        # through the client, not by reopening the run: that would move its end time to now, and the
        # runs table's Duration would show the wait for the evaluation rather than the training
        scores = {split: evaluation.scores[split, model, seed] for split in evaluation.splits}
        trained = metrics["training"][model][str(seed)]
        values = {f"{split}_{key}": result[key] for split, result in scores.items() for key in HEADLINE}
        values |= {f"{split}_f1_{entity_type}": type_scores["f1"] for split, result in scores.items()
                   for entity_type, type_scores in result["per_type"].items()}
        client.log_batch(run.info.run_id, metrics=[Metric(key, value, now, 0) for key, value in values.items()])
        client.log_inputs(run.info.run_id, dataset_inputs(["train", *evaluation.splits], data))
        for figure in figures:
            client.log_artifact(run.info.run_id, str(figure), "figures")
        client.set_tag(run.info.run_id, SUMMARY_TAG, summary.info.run_id)
        if "mlflow.parentRunId" in run.data.tags:  # nested under an older summary by earlier versions
            client.delete_tag(run.info.run_id, "mlflow.parentRunId")
        client.set_tag(run.info.run_id, DESCRIPTION, seed_run_description(run, trained, scores, summary_link))
    save_runs_view(experiment_id, evaluation)
    set_aliases(evaluation, runs, summary_link)
    describe_experiment(experiment_id, answer_line(evaluation))
    print(f"MLflow: the runs with their scores are at /#/experiments/{experiment_id}/runs?{MODEL_TRAINING_QUERY}"
          f"&viewStateShareKey={SAVED_VIEW} of the tracking UI (`mlflow ui --backend-store-uri {tracking_uri()}`)")
    return summary.info.run_id

"""MLflow runs: one per trained (model, seed) with every param it trained with and its learning
curve; one parent run per search with a child per (point, seed) and the ranking; one summary run
per study."""
from __future__ import annotations

import json
from contextlib import contextmanager

import mlflow
import pandas as pd

from pipeline.params import Params
from pipeline.tracking.store import DESCRIPTION, EXPERIMENT, STUDY_EXPERIMENT, flat_params, run_tags, start_experiment


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


def log_study(name: str, spec: dict, report: dict, description: str, files: list) -> str:
    """The summary run of a study (experiment `ner-study`, run `study-<name>`): its settings as
    params, each setting's F1 and gains as metrics (`<setting>.<model>.f1`, `<setting>.<a>_vs_<b>.gain`),
    the answer and the tables as its description, the report, tables and figure as artifacts.
    Each setting's own trainings and evaluation are the runs of its DVC experiment, in the main
    experiment, tagged with that experiment's name. Returns the run id."""
    start_experiment(STUDY_EXPERIMENT)
    tags = {**run_tags("study"), "mlflow.runName": f"study-{name}", "study": name, DESCRIPTION: description}
    split = report["split"]
    with mlflow.start_run(tags=tags) as run:
        mlflow.log_params({"study": name, "split": split, "seeds": json.dumps(spec["seeds"]),
                           **{f"setting.{row['setting']}": json.dumps(row["changes"]) for row in report["settings"]},
                           **{f"experiment.{row['setting']}": row["experiment"] for row in report["settings"]}})
        metrics = {}
        for row in report["settings"]:
            for model, scores in row["models"].items():
                metrics[f"{row['setting']}.{model}.f1"] = scores[split]["mean"]
                metrics[f"{row['setting']}.{model}.f1_sd"] = scores[split]["sd"]
            for pair, gain in row["gains"].items():
                metrics[f"{row['setting']}.{pair}.gain"] = gain["f1"]
                metrics[f"{row['setting']}.{pair}.p_value"] = gain["p_value"]
        mlflow.log_metrics(metrics)
        for path in files:
            mlflow.log_artifact(str(path))
        return run.info.run_id

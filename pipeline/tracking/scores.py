"""What `evaluate` logs: one summary run with the gains, the datasets and the reports; on each
seed's training run its scores, datasets and description; then the runs view, the registry
aliases and the answer atop the experiment's description."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from pipeline.evaluation.report import headline_markdown
from pipeline.evaluation.scoring import HEADLINE, Evaluation, gain_key
from pipeline.params import DataParams
from pipeline.tracking.datasets import dataset_inputs
from pipeline.tracking.experiment import (
    MODEL_TRAINING_QUERY,
    SAVED_VIEW,
    answer_line,
    describe_experiment,
    open_experiment,
    run_link,
    save_runs_view,
    seed_run_description,
)
from pipeline.tracking.models import log_best_taggers, set_aliases
from pipeline.tracking.store import DESCRIPTION, SUMMARY_RUN, SUMMARY_TAG, room_for_artifacts, run_tags, tracking_uri


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


def log_evaluation(evaluation: Evaluation, figures: list[Path], reports: list[Path], data: DataParams,
                   register: bool) -> str:
    """One summary run with the gains, the datasets and the reports; each seed's scores, datasets,
    description and the figures on its training run (tagged with the summary's id; not nested under
    it, since the UI collapses nested runs and hides them from its charts); each model's best
    tagger on its run (registered if `register`); the runs view, the champion/challenger aliases
    of registered taggers, and the answer atop the experiment's description. Returns the summary
    run's id."""
    experiment_id = open_experiment()
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
        with room_for_artifacts("logging the evaluation's reports to MLflow"):
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
        with room_for_artifacts("logging the figures to MLflow"):
            for figure in figures:
                client.log_artifact(run.info.run_id, str(figure), "figures")
        client.set_tag(run.info.run_id, SUMMARY_TAG, summary.info.run_id)
        if "mlflow.parentRunId" in run.data.tags:  # nested under an older summary by earlier versions
            client.delete_tag(run.info.run_id, "mlflow.parentRunId")
        client.set_tag(run.info.run_id, DESCRIPTION, seed_run_description(run, trained, scores, summary_link))
    save_runs_view(experiment_id, evaluation)
    log_best_taggers(evaluation, runs, register)
    set_aliases(evaluation, runs, summary_link)
    describe_experiment(experiment_id, answer_line(evaluation))
    print(f"MLflow: the runs with their scores are at /#/experiments/{experiment_id}/runs?{MODEL_TRAINING_QUERY}"
          f"&viewStateShareKey={SAVED_VIEW} of the tracking UI (`mlflow ui --backend-store-uri {tracking_uri()}`)")
    return summary.info.run_id

"""What the MLflow UI shows as it opens: the experiment's kind and description (the latest
answer first), each seed run's description, the saved runs view with the scores as columns, and
links that open on the model-training pages."""
from __future__ import annotations

import json
import time

import mlflow

from pipeline.evaluation.report import format_p
from pipeline.evaluation.scoring import CHAR_GAIN, Evaluation, gain_key
from pipeline.tracking.store import DESCRIPTION, EXPERIMENT, SUMMARY_RUN, run_tags, set_experiment_tag, start_experiment

# MLflow 3 opens an experiment on its GenAI overview unless it is tagged as model training
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
SAVED_VIEW = "char-gain"  # the runs view with the scores as columns: ?viewStateShareKey=char-gain
SAVED_VIEW_TAG = "mlflow.sharedViewState."
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


def open_experiment(name: str = EXPERIMENT) -> str:
    """start_experiment, and a new main experiment described (until an evaluation gives the answer)."""
    experiment_id = start_experiment(name)
    if name == EXPERIMENT and DESCRIPTION not in mlflow.get_experiment(experiment_id).tags:
        describe_experiment(experiment_id, NOT_EVALUATED)
    return experiment_id


def describe_experiment(experiment_id: str, answer: str) -> None:
    """Mark the experiment as model training and describe it, the latest answer first (the line the
    UI shows above the runs)."""
    set_experiment_tag(experiment_id, *EXPERIMENT_KIND)
    view_link = f"#/experiments/{experiment_id}/runs?{MODEL_TRAINING_QUERY}&viewStateShareKey={SAVED_VIEW}"
    set_experiment_tag(experiment_id, DESCRIPTION, EXPERIMENT_DESCRIPTION.format(answer=answer, view_link=view_link))


def answer_line(evaluation: Evaluation) -> str:
    """The char gain (or the first compared pair's) on the figure split, in one line."""
    a, b = CHAR_GAIN if CHAR_GAIN in evaluation.comparisons else evaluation.comparisons[0]
    split, metrics = evaluation.figure_split, evaluation.metrics
    gain = metrics["gains"][gain_key(a, b)][split]
    return (f"**{b} vs {a} on {split}: {gain['f1']:+.2f} F1 [{gain['ci95'][0]:+.2f}, {gain['ci95'][1]:+.2f}], "
            f"p = {format_p(gain['p_value'])}** (mean over {len(evaluation.seeds)} seeds: {a} "
            f"{metrics[a][split]['f1']:.2f}, {b} {metrics[b][split]['f1']:.2f}; latest evaluation, DVC experiment "
            f"`{run_tags('evaluate')['dvc_experiment']}`)")


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

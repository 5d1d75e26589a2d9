"""Stage `evaluate`: both taggers on dev, test and test_pp -> reports/metrics.json, plots, MLflow.

The char gain is F1(char_cnn) - F1(baseline) with a paired bootstrap 95% interval over
sentences. Every token of every sentence is tagged: no truncation.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import keras
import mlflow
from mlflow.exceptions import MlflowException

from pipeline import model as _custom_layers  # noqa: F401  (registers the tagger's layers for loading)
from pipeline.conll import available_splits, check_known_tags, load_split, split_path, write_text_atomic
from pipeline.errors import PipelineError, exits_cleanly
from pipeline.metrics import paired_bootstrap, score, sentence_counts
from pipeline.model import tag_sentences
from pipeline.params import load_params
from pipeline.plots import confusion_matrices, learning_curves, per_type_f1
from pipeline.tracking import run_tags, start_experiment
from pipeline.train import HISTORY_FILE, MODELS, MODELS_DIR, SUMMARY_FILE, TAGGER_FILE

EVAL_SPLITS = ("dev", "test", "test_pp")
REPORTS_DIR = Path("reports")
METRICS_FILE = REPORTS_DIR / "metrics.json"
PLOTS_DIR = REPORTS_DIR / "plots"
FIGURES_DIR = REPORTS_DIR / "figures"
BASELINE, CHAR_MODEL = "baseline", "char_cnn"
HEADLINE = ("f1", "precision", "recall", "accuracy", "macro_accuracy")


def load_trained(name: str) -> tuple[keras.Model, dict, list[dict]]:
    """The tagger, its training summary and learning curve from models/<name>/."""
    folder = MODELS_DIR / name
    try:
        tagger = keras.saving.load_model(folder / TAGGER_FILE)
        summary = json.loads((folder / SUMMARY_FILE).read_text())
        with open(folder / HISTORY_FILE, newline="") as file:
            history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]
    except (OSError, ValueError) as error:
        raise PipelineError(f"{folder}: not a trained model folder ({error})") from None
    return tagger, summary, history


def rounded(value, digits: int = 4):
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return round(value, digits) if isinstance(value, float) else value


def write_plot_data(histories: dict[str, list[dict]], metrics: dict, split: str) -> None:
    """CSV files behind dvc.yaml's plots (learning curves, per-type F1), one per model."""
    for name, rows in histories.items():
        lines = ["epoch,train_loss,dev_f1"] + [f"{int(r['epoch'])},{r['train_loss']:.6f},{r['dev_f1']:.4f}" for r in rows]
        write_text_atomic(PLOTS_DIR / f"learning_curve_{name}.csv", "\n".join(lines) + "\n")
        per_type = metrics[name][split]["per_type"]
        lines = ["type,f1"] + [f"{t},{s['f1']:.4f}" for t, s in per_type.items()]
        write_text_atomic(PLOTS_DIR / f"per_type_f1_{name}.csv", "\n".join(lines) + "\n")


def log_to_model_run(run_id: str, name: str, metrics: dict, figures: list[Path]) -> bool:
    """Add the final scores and figures to the model's training run; False if the run is not in this store."""
    try:
        mlflow.get_run(run_id)
    except MlflowException:
        print(f"warning: MLflow run {run_id} of {name} is not in {mlflow.get_tracking_uri()}; "
              f"its final scores go only to the comparison run", file=sys.stderr)
        return False
    with mlflow.start_run(run_id=run_id):
        for split, scores in metrics.items():
            mlflow.log_metrics({f"{split}_{key}": scores[key] for key in HEADLINE})
            mlflow.log_metrics({f"{split}_f1_{t}": s["f1"] for t, s in scores["per_type"].items()})
        for figure in figures:
            mlflow.log_artifact(str(figure), "figures")
    return True


def log_comparison(summaries: dict[str, dict], metrics: dict, figures: list[Path]) -> None:
    """One run per evaluation, holding the char gain; the two model runs are nested under it in `mlflow ui`."""
    with mlflow.start_run(run_name="char-gain", tags={**run_tags("evaluate"), "model": "comparison"}) as run:
        mlflow.log_params({f"{name}_run_id": s["mlflow_run_id"] for name, s in summaries.items()})
        for split, gain in metrics["char_gain"].items():
            mlflow.log_metrics({f"char_gain_{split}": gain["f1"], f"char_gain_{split}_ci95_low": gain["ci95"][0],
                                f"char_gain_{split}_ci95_high": gain["ci95"][1]})
            for name in summaries:
                mlflow.log_metric(f"{name}_{split}_f1", metrics[name][split]["f1"])
        mlflow.log_artifact(str(METRICS_FILE))
        for figure in figures:
            mlflow.log_artifact(str(figure), "figures")
    client = mlflow.MlflowClient()
    for name, summary in summaries.items():
        try:
            client.set_tag(summary["mlflow_run_id"], "mlflow.parentRunId", run.info.run_id)
            if name == CHAR_MODEL:
                client.log_metric(summary["mlflow_run_id"], "char_gain_test", metrics["char_gain"]["test"]["f1"])
        except MlflowException:
            pass  # already reported by log_to_model_run


@exits_cleanly
def main() -> None:
    params = load_params()
    trained = {name: load_trained(name) for name in MODELS}
    splits = available_splits(EVAL_SPLITS)
    metrics: dict = {name: {} for name in MODELS}
    metrics["char_gain"] = {}
    predictions: dict[str, dict[str, list]] = {split: {} for split in splits}
    gold: dict[str, list] = {}
    for split in splits:
        sentences = load_split(split, params.data.limit)
        gold[split] = [s.tags for s in sentences]
        counts = {}
        for name, (tagger, _, _) in trained.items():
            check_known_tags(sentences, set(tagger.get_layer("tag_decoder").tags), str(split_path(split)))
            predicted = tag_sentences(tagger, [s.tokens for s in sentences], params.evaluate.batch_size)
            predictions[split][name] = predicted
            metrics[name][split] = score(gold[split], predicted)
            counts[name] = sentence_counts(gold[split], predicted)
        metrics["char_gain"][split] = paired_bootstrap(counts[BASELINE], counts[CHAR_MODEL],
                                                       params.evaluate.bootstrap_resamples, params.evaluate.seed)
        print(f"{split}: " + ", ".join(f"{name} F1 {metrics[name][split]['f1']:.2f}" for name in MODELS)
              + f", char gain {metrics['char_gain'][split]['f1']:+.2f} "
              f"[{metrics['char_gain'][split]['ci95'][0]:+.2f}, {metrics['char_gain'][split]['ci95'][1]:+.2f}]")
    summaries = {name: summary for name, (_, summary, _) in trained.items()}
    metrics["training"] = {name: {key: s[key] for key in ("best_epoch", "epochs_run", "train_seconds")}
                           for name, s in summaries.items()}
    metrics = rounded(metrics)
    write_text_atomic(METRICS_FILE, json.dumps(metrics, indent=2) + "\n")

    figure_split = "test" if "test" in splits else splits[-1]
    histories = {name: history for name, (_, _, history) in trained.items()}
    write_plot_data(histories, metrics, figure_split)
    tags = trained[BASELINE][0].get_layer("tag_decoder").tags
    flat = lambda sentences: [tag for tags in sentences for tag in tags]
    figures = [
        learning_curves(histories, FIGURES_DIR / "learning_curves.png"),
        per_type_f1({name: metrics[name][figure_split]["per_type"] for name in MODELS}, figure_split,
                    FIGURES_DIR / "per_type_f1.png"),
        confusion_matrices(flat(gold[figure_split]),
                           {name: flat(predictions[figure_split][name]) for name in MODELS}, tags, figure_split,
                           FIGURES_DIR / "confusion_matrix.png"),
    ]

    start_experiment()
    for name, summary in summaries.items():
        log_to_model_run(summary["mlflow_run_id"], name, {s: metrics[name][s] for s in splits}, figures)
    log_comparison(summaries, metrics, figures)


if __name__ == "__main__":
    main()

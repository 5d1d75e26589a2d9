"""Stage `evaluate`: every trained (model, seed) on dev, test and test_pp -> reports/metrics.json,
reports/comparison.md, plots, and the MLflow runs.

Per model and split the scores are means over seeds, with the spread of F1 over seeds. The char
gain is F1(char_cnn) - F1(baseline), averaged over seeds, with a paired bootstrap 95% interval
over sentences and an approximate randomization p-value. Every token of every sentence is
tagged: no truncation.
"""
from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from pipeline import model as _custom_layers  # noqa: F401  (registers the tagger's layers for loading)
from pipeline.conll import available_splits, check_known_tags, load_split, split_path, write_text_atomic
from pipeline.errors import PipelineError, exits_cleanly
from pipeline.metrics import paired_bootstrap, randomization_test, score, seed_stats, sentence_counts
from pipeline.model import tag_sentences
from pipeline.params import Params, load_params
from pipeline.plots import confusion_matrices, f1_per_seed, learning_curves, per_type_f1
from pipeline.report import BASELINE, CHAR_MODEL, comparison_markdown
from pipeline.tracking import run_tags, start_experiment
from pipeline.train import HISTORY_FILE, MODELS, SUMMARY_FILE, TAGGER_FILE, seed_folder

EVAL_SPLITS = ("dev", "test", "test_pp")
REPORTS_DIR = Path("reports")
METRICS_FILE = REPORTS_DIR / "metrics.json"
COMPARISON_FILE = REPORTS_DIR / "comparison.md"
PLOTS_DIR = REPORTS_DIR / "plots"
FIGURES_DIR = REPORTS_DIR / "figures"
HEADLINE = ("f1", "precision", "recall", "accuracy", "macro_accuracy")


@dataclass
class TrainedRun:
    model: str
    seed: int
    tagger: keras.Model
    summary: dict
    history: list[dict]


def load_trained(name: str, seed: int) -> TrainedRun:
    """The tagger, training summary and learning curve from models/<name>/seed_<seed>/."""
    folder = seed_folder(name, seed)
    try:
        tagger = keras.saving.load_model(folder / TAGGER_FILE)
        summary = json.loads((folder / SUMMARY_FILE).read_text())
        with open(folder / HISTORY_FILE, newline="") as file:
            history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]
    except (OSError, ValueError) as error:
        raise PipelineError(f"{folder}: not a trained model folder ({error}); is seed {seed} in train.seeds "
                            f"of the run that trained it?") from None
    return TrainedRun(name, seed, tagger, summary, history)


def mean_over_seeds(scores: list):
    """Element-wise mean of nested score dicts (one per seed)."""
    if isinstance(scores[0], dict):
        return {key: mean_over_seeds([s[key] for s in scores]) for key in scores[0]}
    return scores[0] if isinstance(scores[0], int) else float(np.mean(scores))  # ints: support, equal across seeds


def rounded(value, digits: int = 4):
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return round(value, digits) if isinstance(value, float) else value


def evaluate(runs: dict[str, list[TrainedRun]], splits: list[str], params: Params):
    """Score every run on every split; return metrics.json's content, and per (split, model, seed)
    the predictions and scores."""
    metrics: dict = {name: {} for name in runs}
    metrics["char_gain"] = {}
    predictions: dict = {}
    seed_scores: dict = {}
    gold: dict = {}
    for split in splits:
        sentences = load_split(split, params.data.limit)
        gold[split] = [s.tags for s in sentences]
        counts: dict[str, list[np.ndarray]] = {}
        for name, model_runs in runs.items():
            check_known_tags(sentences, set(model_runs[0].tagger.get_layer("tag_decoder").tags),
                             str(split_path(split)))
            per_seed = []
            for run in model_runs:
                predicted = tag_sentences(run.tagger, [s.tokens for s in sentences], params.evaluate.batch_size)
                predictions[split, name, run.seed] = predicted
                seed_scores[split, name, run.seed] = score(gold[split], predicted)
                per_seed.append(seed_scores[split, name, run.seed])
                counts.setdefault(name, []).append(sentence_counts(gold[split], predicted))
            f1s = {str(run.seed): s["f1"] for run, s in zip(model_runs, per_seed)}
            metrics[name][split] = {**mean_over_seeds(per_seed),
                                    "seeds": {**seed_stats(list(f1s.values())), "per_seed": f1s}}
        gains = {seed: metrics[CHAR_MODEL][split]["seeds"]["per_seed"][seed]
                 - metrics[BASELINE][split]["seeds"]["per_seed"][seed]
                 for seed in metrics[BASELINE][split]["seeds"]["per_seed"]}
        stats = seed_stats(list(gains.values()))
        metrics["char_gain"][split] = {
            **paired_bootstrap(counts[BASELINE], counts[CHAR_MODEL], params.evaluate.bootstrap_resamples,
                               params.evaluate.seed),
            "seeds": {"n": stats["n"], "mean": stats["mean"], "std": stats["std"], "per_seed": gains},
            "p_value": randomization_test(counts[BASELINE], counts[CHAR_MODEL],
                                          params.evaluate.permutation_resamples, params.evaluate.seed)}
        gain = metrics["char_gain"][split]
        print(f"{split}: " + ", ".join(f"{name} F1 {metrics[name][split]['f1']:.2f} "
                                       f"(sd {metrics[name][split]['seeds']['std']:.2f})" for name in runs)
              + f"; char gain {gain['f1']:+.2f} [{gain['ci95'][0]:+.2f}, {gain['ci95'][1]:+.2f}], "
              f"p = {gain['p_value']:.4f}")
    metrics["training"] = {name: {str(run.seed): {key: run.summary[key] for key in
                                                  ("best_epoch", "epochs_run", "train_seconds")}
                                  for run in model_runs} for name, model_runs in runs.items()}
    return rounded(metrics), predictions, seed_scores, gold


def mean_curve(histories: list[list[dict]]) -> list[dict]:
    """Per epoch, the mean over the seeds that ran it (early stopping ends seeds at different epochs)."""
    rows = []
    for epoch in range(1, max(len(h) for h in histories) + 1):
        at_epoch = [h[epoch - 1] for h in histories if len(h) >= epoch]
        rows.append({"epoch": epoch, "train_loss": np.mean([r["train_loss"] for r in at_epoch]),
                     "dev_f1": np.mean([r["dev_f1"] for r in at_epoch]), "seeds": len(at_epoch)})
    return rows


def write_plot_data(runs: dict[str, list[TrainedRun]], metrics: dict, split: str) -> None:
    """CSV files behind dvc.yaml's plots (learning curves, per-type F1): means over seeds, one file per model."""
    for name, model_runs in runs.items():
        lines = ["epoch,train_loss,dev_f1,seeds"] + [
            f"{r['epoch']},{r['train_loss']:.6f},{r['dev_f1']:.4f},{r['seeds']}"
            for r in mean_curve([run.history for run in model_runs])]
        write_text_atomic(PLOTS_DIR / f"learning_curve_{name}.csv", "\n".join(lines) + "\n")
        lines = ["type,f1"] + [f"{t},{s['f1']:.4f}" for t, s in metrics[name][split]["per_type"].items()]
        write_text_atomic(PLOTS_DIR / f"per_type_f1_{name}.csv", "\n".join(lines) + "\n")


def make_figures(runs, metrics, predictions, gold, splits) -> list[Path]:
    split = "test" if "test" in splits else splits[-1]
    tags = runs[BASELINE][0].tagger.get_layer("tag_decoder").tags
    flat = lambda sentences: [tag for tags in sentences for tag in tags]
    seeds = [run.seed for run in runs[BASELINE]]
    return [
        learning_curves({name: [run.history for run in model_runs] for name, model_runs in runs.items()},
                        FIGURES_DIR / "learning_curves.png"),
        per_type_f1({name: metrics[name][split]["per_type"] for name in runs}, split,
                    FIGURES_DIR / "per_type_f1.png"),
        # pooled over seeds: every seed's predictions against the gold tags
        confusion_matrices(flat(gold[split]) * len(seeds),
                           {name: [t for seed in seeds for t in flat(predictions[split, name, seed])]
                            for name in runs}, tags, split, FIGURES_DIR / "confusion_matrix.png"),
        f1_per_seed(metrics, list(runs), splits, FIGURES_DIR / "f1_per_seed.png"),
    ]


def log_to_model_run(run: TrainedRun, scores: dict[str, dict], figures: list[Path]) -> None:
    """Add this seed's final scores (split -> score) and the figures to its training run."""
    run_id = run.summary["mlflow_run_id"]
    try:
        mlflow.get_run(run_id)
    except MlflowException:
        print(f"warning: MLflow run {run_id} of {run.model} seed {run.seed} is not in {mlflow.get_tracking_uri()}; "
              f"its scores are only in the comparison run", file=sys.stderr)
        return
    with mlflow.start_run(run_id=run_id):
        for split, result in scores.items():
            mlflow.log_metrics({f"{split}_{key}": result[key] for key in HEADLINE})
            mlflow.log_metrics({f"{split}_f1_{t}": s["f1"] for t, s in result["per_type"].items()})
        for figure in figures:
            mlflow.log_artifact(str(figure), "figures")


def log_comparison(runs: dict[str, list[TrainedRun]], metrics: dict, artifacts: list[Path]) -> str:
    """One summary run per evaluation, holding the char gain; every seed's run is nested under it."""
    seeds = [run.seed for run in runs[BASELINE]]
    with mlflow.start_run(run_name="char-gain", tags={**run_tags("evaluate"), "model": "comparison"}) as summary:
        mlflow.log_params({"seeds": ",".join(map(str, seeds)), "n_seeds": len(seeds)})
        for split, gain in metrics["char_gain"].items():
            mlflow.log_metrics({f"char_gain_{split}": gain["f1"], f"char_gain_{split}_ci95_low": gain["ci95"][0],
                                f"char_gain_{split}_ci95_high": gain["ci95"][1],
                                f"char_gain_{split}_std": gain["seeds"]["std"],
                                f"char_gain_{split}_p_value": gain["p_value"]})
            for name in runs:
                mlflow.log_metrics({f"{name}_{split}_f1_mean": metrics[name][split]["seeds"]["mean"],
                                    f"{name}_{split}_f1_std": metrics[name][split]["seeds"]["std"]})
        for path in artifacts:
            mlflow.log_artifact(str(path), "figures" if path.suffix == ".png" else None)
    client = mlflow.MlflowClient()
    for run in (run for model_runs in runs.values() for run in model_runs):
        try:
            client.set_tag(run.summary["mlflow_run_id"], "mlflow.parentRunId", summary.info.run_id)
        except MlflowException:
            pass  # already reported by log_to_model_run
    return summary.info.run_id


@exits_cleanly
def main() -> None:
    params = load_params()
    runs = {name: [load_trained(name, seed) for seed in params.train.seeds] for name in MODELS}
    splits = available_splits(EVAL_SPLITS)
    metrics, predictions, seed_scores, gold = evaluate(runs, splits, params)
    write_text_atomic(METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    figure_split = "test" if "test" in splits else splits[-1]
    write_plot_data(runs, metrics, figure_split)
    figures = make_figures(runs, metrics, predictions, gold, splits)
    write_text_atomic(COMPARISON_FILE, comparison_markdown(metrics, list(runs), splits))

    start_experiment()
    for run in (run for model_runs in runs.values() for run in model_runs):
        log_to_model_run(run, {split: seed_scores[split, run.model, run.seed] for split in splits}, figures)
    log_comparison(runs, metrics, [METRICS_FILE, COMPARISON_FILE, *figures])


if __name__ == "__main__":
    main()

"""What the evaluate stage tells MLflow, on a real SQLite store: the experiment kind and description,
run descriptions, datasets, the saved runs view and the registry aliases. The taggers are replaced
by fixed predictions so that the scores are known; everything after tagging is the real code."""
import json
import time
from pathlib import Path

import mlflow
import pytest

from pipeline.data.corpus import Sentence
from pipeline.data.lexicon import Lexicon
from pipeline.evaluation import scoring as evaluation_module
from pipeline.evaluation.breakdown import break_down
from pipeline.evaluation.scoring import evaluate, rounded
from pipeline.model.trained import TrainedRun
from pipeline.params import DataParams, EvaluateParams, load_params
from pipeline.tracking import models, scores
from pipeline.tracking.experiment import open_experiment
from pipeline.tracking.runs import training_run
from pipeline.tracking.store import EXPERIMENT
from tests.conftest import REPO_ROOT

SENTENCES = [Sentence("Peter lives in Berlin .".split(), ["B-PER", "O", "O", "B-LOC", "O"], 1),
             Sentence("EU rejects German call .".split(), ["B-ORG", "O", "B-MISC", "O", "O"], 7),
             Sentence("Zorbl visited London Bridge .".split(), ["B-PER", "O", "B-LOC", "I-LOC", "O"], 13)]
MISSES_LOCATIONS = [["O" if tag.endswith("LOC") else tag for tag in s.tags] for s in SENTENCES]
TAGS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
SEEDS = [1, 2]
SHA = {"train": "a" * 64, "dev": "b" * 64, "test": "c" * 64}
DATA = DataParams(dataset="conll2003", source="default", format="conll")
EVALUATE = EvaluateParams(bootstrap_resamples=1000, permutation_resamples=1000, seed=42, batch_size=8)


class FixedTagger:
    """Stands in for a trained tagger: the gold tags, or the gold tags without locations."""

    def __init__(self, misses_locations: bool):
        self.tags, self.misses_locations = TAGS, misses_locations

    def tag_tokens(self, sentences, batch_size):
        return [MISSES_LOCATIONS[i] if self.misses_locations else SENTENCES[i].tags for i in range(len(sentences))]

    def check_trained_as(self, summary, summary_file):
        """A stand-in is the training its folder describes."""


LOGGED: list[tuple[str, str, bool]] = []


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A project folder with its SQLite store, the data manifest, and one registered training run per
    (model, seed), as the train stage leaves them."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # the stand-ins have no tagger.keras to log: what would be logged is recorded instead
    monkeypatch.setattr(models, "log_tagger", lambda file, model, register: LOGGED.append((str(file), model, register)))
    LOGGED.clear()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/raw/manifest.json").write_text(json.dumps({s: {"sha256": h} for s, h in SHA.items()}))
    params = load_params(REPO_ROOT / "params.yaml")
    open_experiment()
    client = mlflow.MlflowClient()
    runs = {}
    for model in ("baseline", "char_cnn"):
        client.create_registered_model(models.registered_name(model))
        for seed in SEEDS:
            with training_run(model, seed, params, {"n_words": 10}, {}, time.time()) as run_id:
                pass
            client.create_model_version(models.registered_name(model), source=str(tmp_path), run_id=run_id)
            summary = {"mlflow_run_id": run_id, "best_epoch": 3, "epochs_run": 5, "train_seconds": 90.0}
            runs.setdefault(model, []).append(TrainedRun(model, seed, Path(f"models/{model}/seed_{seed}"), summary, []))
    return runs


def evaluate_and_log(runs, monkeypatch, worse: str):
    """Evaluate with `worse` missing every location, log to MLflow; return the summary run's id."""
    monkeypatch.setattr(evaluation_module.Tagger, "from_file",
                        classmethod(lambda cls, path: FixedTagger(Path(path).parts[1] == worse)))
    data = {"dev": SENTENCES, "test": SENTENCES}
    result = evaluate(runs, data, [("baseline", "char_cnn")], EVALUATE)
    lexicon = Lexicon(frozenset({"peter", "berlin"}), frozenset({"berlin", "london"}), True, True)
    breakdown = break_down(result, data, lexicon, EVALUATE)
    result.metrics["breakdown"] = rounded({"word_categories": list(breakdown.categories), **breakdown.metrics})
    return scores.log_evaluation(result, [], [], DATA, register=True)


def test_experiment_opens_as_model_training_with_a_description(store, monkeypatch):
    evaluate_and_log(store, monkeypatch, worse="baseline")
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    description = experiment.tags["mlflow.note.content"]
    # the answer first: the UI shows the first line above the runs
    assert description.startswith("**char_cnn vs baseline on test: +20.00 F1 [")
    assert "(mean over 2 seeds: baseline 80.00, char_cnn 100.00; latest evaluation" in description
    assert "char_gain_test" in description and "`char_cnn` adds a char CNN" in description
    assert (f"#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
            "&viewStateShareKey=char-gain") in description


def test_runs_describe_themselves_and_name_their_datasets(store, monkeypatch):
    summary_id = evaluate_and_log(store, monkeypatch, worse="baseline")
    summary = mlflow.get_run(summary_id)
    # the gains table of comparison.md: char_cnn finds the 2 locations (of 6 entities) that baseline misses
    assert "| baseline -> char_cnn | test | +20.00 ± 0.00 |" in summary.data.tags["mlflow.note.content"]
    run = mlflow.get_run(store["char_cnn"][1].summary["mlflow_run_id"])
    description = run.data.tags["mlflow.note.content"]
    assert description.startswith("**char_cnn** (char encoder: cnn), seed 2: dev F1 100.00, test F1 100.00.")
    assert f"[char-gain](#/experiments/{run.info.experiment_id}/runs/{summary_id})" in description
    assert run.data.tags["summary_run"] == summary_id and "mlflow.parentRunId" not in run.data.tags
    # logged without reopening the run: its end time (the runs table's Duration) stays the training's
    assert run.info.end_time < summary.info.start_time
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"conll2003/train", "conll2003/dev", "conll2003/test"}
    train = inputs["conll2003/train"]
    assert train.dataset.digest == SHA["train"][:12]
    assert json.loads(train.dataset.source)["url"].endswith("/CONLL2003/train.txt")
    tags = {tag.key: tag.value for tag in train.tags}
    assert tags["mlflow.data.context"] == "training" and tags["sha256"] == SHA["train"]
    contexts = {name: {t.key: t.value for t in i.tags}["mlflow.data.context"] for name, i in inputs.items()}
    assert contexts == {"conll2003/train": "training", "conll2003/dev": "validation", "conll2003/test": "evaluation"}
    assert {i.dataset.name for i in summary.inputs.dataset_inputs} == {"conll2003/dev", "conll2003/test"}
    table = mlflow.load_table("breakdown.json", run_ids=[summary_id])
    oobv = table[(table.split == "test") & (table.dimension == "category") & (table.group == "OOBV")].iloc[0]
    # EU, German, Zorbl, London Bridge: out of train and out of the vectors; baseline misses London Bridge
    assert (oobv.entities, oobv.comparison, oobv.f1_baseline, oobv.f1_char_cnn) == (4, "baseline_vs_char_cnn",
                                                                                   pytest.approx(600 / 7), 100)


def test_saved_view_shows_the_gain_and_f1_columns(store, monkeypatch):
    summary_id = evaluate_and_log(store, monkeypatch, worse="baseline")
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    envelope = json.loads(experiment.tags["mlflow.sharedViewState.char-gain"])
    state = json.loads(envelope["state"])
    assert envelope["name"] == "What the characters add"
    assert state["selectedColumns"][:2] == ["attributes.`Dataset`", "metrics.`char_gain_test`"]
    assert {"metrics.`char_gain_test_ci95_low`", "metrics.`test_f1`", "metrics.`dev_f1`"} <= set(
        state["selectedColumns"])
    logged = set(mlflow.get_run(summary_id).data.metrics) | set(
        mlflow.get_run(store["baseline"][0].summary["mlflow_run_id"]).data.metrics)
    assert {column.split("`")[1] for column in state["selectedColumns"] if column.startswith("metrics.")} <= logged


def test_champion_is_the_better_tagger_on_dev_and_moves_when_the_ranking_does(store, monkeypatch):
    client = mlflow.MlflowClient()
    evaluate_and_log(store, monkeypatch, worse="baseline")
    champion = client.get_model_version_by_alias("ner-char-cnn", "champion")
    assert champion.run_id == store["char_cnn"][0].summary["mlflow_run_id"]  # seeds tie on dev: the first
    assert client.get_model_version_by_alias("ner-baseline", "challenger").run_id == store["baseline"][0].summary[
        "mlflow_run_id"]
    assert "[char-gain run](#/experiments/" in client.get_registered_model("ner-char-cnn").description
    evaluate_and_log(store, monkeypatch, worse="char_cnn")  # a re-evaluation that ranks them the other way
    assert set(client.get_registered_model("ner-baseline").aliases) == {"champion"}
    assert set(client.get_registered_model("ner-char-cnn").aliases) == {"challenger"}


def test_only_each_model_s_best_seed_on_dev_logs_its_tagger_and_only_once(store, monkeypatch):
    client = mlflow.MlflowClient()
    ends = {run.seed: client.get_run(run.summary["mlflow_run_id"]).info.end_time for run in store["char_cnn"]}
    evaluate_and_log(store, monkeypatch, worse="baseline")
    # seeds tie on dev: the first; the other seeds' taggers stay in DVC only
    assert LOGGED == [(f"models/{model}/seed_{SEEDS[0]}/tagger.keras", model, True) for model in ("baseline", "char_cnn")]
    best = client.get_run(store["char_cnn"][0].summary["mlflow_run_id"])
    assert best.data.tags["tagger"] == "logged" and best.info.end_time == ends[SEEDS[0]]  # its Duration unchanged
    evaluate_and_log(store, monkeypatch, worse="baseline")  # evaluated again: nothing logged twice
    assert len(LOGGED) == 2

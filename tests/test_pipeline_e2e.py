"""`dvc repro` end to end in a temporary git repo: real CoNLL data (a few sentences), 1 epoch."""
import json
import os
import shutil
import subprocess
import sys

import mlflow
import pytest
import yaml

from tests.conftest import REPO_ROOT

SPLITS = ("dev", "test", "test_pp")
SCORES = {"f1", "precision", "recall", "accuracy", "macro_accuracy", "per_type"}


def run(args, cwd, check=True):
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def set_params(repo, **changes):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for key, value in changes.items():
        section, name = key.split(".")
        params[section][name] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_data):
    repo = tmp_path_factory.mktemp("project")
    for name in ("pipeline", "dvc.yaml", "params.yaml", ".gitignore"):
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, repo / name)
    set_params(repo, **{"data.source": str(shared_data), "data.limit": 40, "train.epochs": 1,
                        "evaluate.bootstrap_resamples": 1000})
    run(["git", "init", "-q"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"], repo)
    run([sys.executable, "-m", "dvc", "init", "-q"], repo)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], repo)
    repro = run([sys.executable, "-m", "dvc", "repro"], repo)
    return repo, repro


def test_all_stages_run_and_metrics_have_the_documented_shape(repo):
    repo, repro = repo
    for stage in ("download", "vocab", "char_vocab", "train@baseline", "train@char_cnn", "evaluate"):
        assert f"Running stage '{stage}'" in repro.stdout
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    for model in ("baseline", "char_cnn"):
        assert set(metrics[model]) == set(SPLITS)
        for split in SPLITS:
            assert set(metrics[model][split]) == SCORES
            assert 0 <= metrics[model][split]["f1"] <= 100
    for split in SPLITS:
        gain = metrics["char_gain"][split]
        assert gain["f1"] == pytest.approx(metrics["char_cnn"][split]["f1"] - metrics["baseline"][split]["f1"],
                                           abs=1e-3)
        assert gain["ci95"][0] <= gain["f1"] <= gain["ci95"][1]
    for name in ("learning_curves", "per_type_f1", "confusion_matrix"):
        assert (repo / f"reports/figures/{name}.png").stat().st_size > 10_000
    shown = json.loads(run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], repo).stdout)
    assert "reports/metrics.json" in json.dumps(shown)


def test_mlflow_holds_both_runs_with_histories_metrics_and_models(repo):
    repo, _ = repo
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("ner-char-embeddings")
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list")
    by_name = {run.info.run_name: run for run in runs}
    assert set(by_name) == {"baseline", "char_cnn", "char-gain"}
    client = mlflow.MlflowClient()
    comparison = by_name["char-gain"]
    for name in ("baseline", "char_cnn"):
        run = by_name[name]
        assert run.data.params["model_name"] == name and run.data.params["train.epochs"] == "1"
        assert run.data.tags["dvc_stage"] == f"train@{name}"
        assert run.data.tags["mlflow.parentRunId"] == comparison.info.run_id
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_f1")] == [1]
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 1
        assert {"dev_f1", "test_f1", "test_pp_f1", "test_macro_accuracy"} <= set(run.data.metrics)
        assert {a.path for a in client.list_artifacts(run.info.run_id, "figures")} >= {
            "figures/learning_curves.png", "figures/confusion_matrix.png"}
    models = mlflow.search_logged_models([experiment.experiment_id], output_format="list")
    assert sorted(m.source_run_id for m in models) == sorted(by_name[n].info.run_id for n in ("baseline", "char_cnn"))
    assert comparison.data.metrics["char_gain_test"] == pytest.approx(
        json.loads((repo / "reports/metrics.json").read_text())["char_gain"]["test"]["f1"], abs=1e-3)


def test_second_repro_does_nothing(repo):
    repo, _ = repo
    again = run([sys.executable, "-m", "dvc", "repro"], repo)
    assert "Running stage" not in again.stdout
    assert "Data and pipelines are up to date." in again.stdout


def test_bad_param_value_stops_with_the_key_named(repo):
    repo, _ = repo
    original = (repo / "params.yaml").read_text()
    try:
        set_params(repo, **{"model.cell": "tcn"})
        failed = run([sys.executable, "-m", "dvc", "repro"], repo, check=False)
        assert failed.returncode != 0
        assert "error: params.yaml: model.cell: Input should be 'simple', 'gru' or 'lstm'" in failed.stderr
    finally:
        (repo / "params.yaml").write_text(original)

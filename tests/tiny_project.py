"""The tiny project the end-to-end tests run: a temporary git repository holding this one's pipeline,
with params for real CoNLL data cut to 100 sentences per split, 3 epochs and 2 seeds, and the helpers
that run commands in it and check what they logged."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import yaml

from tests.conftest import REPO_ROOT

SEEDS = [1, 2]
LIMIT, EPOCHS = 100, 3  # sentences per split and epochs: just enough to find some entities
MODELS = ("baseline", "char_cnn", "char_lstm")
DVC = [sys.executable, "-m", "dvc"]


def run_names(seeds, models=MODELS):
    return {f"{model}-seed{seed}" for model in models for seed in seeds}


def run(args, cwd, check=True, tracking_uri=None, input=None, ray_address=None, timeout=None):
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    if ray_address:
        env["RAY_ADDRESS"] = ray_address
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, input=input, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def set_params(repo, **changes):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for key, value in changes.items():
        section, name = key.split(".")
        params[section][name] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def tiny_project(folder: Path, shared_data: Path) -> Path:
    """This repository's pipeline in `folder`, a new git + DVC repository, with the tiny params."""
    for name in ("pipeline", "benchmarks", "dvc.yaml", "params.yaml", ".gitignore"):
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, folder / name)
    set_params(folder, **{"data.source": str(shared_data), "data.limit": LIMIT, "train.epochs": EPOCHS,
                          "train.seeds": SEEDS, "train.learning_rate": 0.02, "train.batch_size": 8,
                          "mlflow.register": True,
                          "train.threads": 1,  # two trainings at once on 2 cores
                          "vocab.pretrained_words": 5000,
                          "evaluate.bootstrap_resamples": 1000, "evaluate.permutation_resamples": 1000})
    run(["git", "init", "-q"], folder)
    run(["git", "config", "user.name", "pipeline tests"], folder)  # CI machines may have no git identity
    run(["git", "config", "user.email", "tests@localhost"], folder)
    run(["git", "commit", "-q", "--allow-empty", "-m", "init"], folder)
    run([*DVC, "init", "-q"], folder)
    shutil.copytree(REPO_ROOT / ".dvc" / "plots", folder / ".dvc" / "plots")  # the project's plot templates
    run([*DVC, "config", "core.analytics", "false"], folder)
    return folder


def training_copy(repo, folder, models, **changes):
    """A copy of the fixture's repository with train's inputs only (no models, no MLflow store), training
    just `models`, with params changes such as {"cluster.local_cpus": 1}."""
    shutil.copytree(repo, folder, ignore=shutil.ignore_patterns("models", "mlflow.db", "mlartifacts", "reports"))
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["models"] = {name: params["models"][name] for name in models}
    params["compare"] = []
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    set_params(folder, **changes)
    return folder


def check_mlflow_runs(tracking_uri: str, experiment_name: str | None = None, seeds=SEEDS, models=MODELS,
                     ray_address: str = "local") -> dict:
    """Every (model, seed) run and the char-gain summary are in the store, with histories, metrics,
    figures and models; returns the runs by name."""
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("ner-char-embeddings")
    query = f"tags.dvc_experiment = '{experiment_name}'" if experiment_name else ""
    runs = client.search_runs([experiment.experiment_id], query)
    by_name = {run.info.run_name: run for run in runs}
    expected = run_names(seeds, models)
    assert set(by_name) == expected | {"char-gain"}, set(by_name)
    summary = by_name["char-gain"]
    gains = {"char_gain_test", "char_gain_test_ci95_low", "char_gain_test_p_value", "gain_baseline_vs_char_cnn_test"}
    if "char_lstm" in models:
        gains |= {"gain_char_cnn_vs_char_lstm_test", "gain_baseline_vs_char_lstm_dev_ci95_high"}
    assert gains <= set(summary.data.metrics)
    assert {a.path for a in client.list_artifacts(summary.info.run_id)} >= {"metrics.json", "comparison.md",
                                                                            "examples.md", "breakdown.json"}
    for name in expected:
        run = by_name[name]
        model, seed = name.split("-seed")
        assert (run.data.tags["model"], run.data.tags["seed"], run.data.params["seed"]) == (model, seed, seed)
        assert run.data.tags["dvc_stage"] == "train" and run.info.status == "FINISHED"
        assert run.data.tags["ray.node_id"] and run.data.tags["ray.cluster"] == ray_address
        assert run.data.tags["summary_run"] == summary.info.run_id
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_f1")] == [1, 2, 3]
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == EPOCHS
        assert {"dev_f1", "test_f1", "test_pp_f1", "test_macro_accuracy"} <= set(run.data.metrics)
        assert {a.path for a in client.list_artifacts(run.info.run_id, "figures")} >= {
            "figures/learning_curves.png", "figures/f1_per_seed.png"}
    # each model's best seed on dev (the first of a tie) logs its tagger, once; the others' stay in DVC
    best = {by_name[max(run_names(seeds, [model]), key=lambda name: (by_name[name].data.metrics["dev_f1"],
                                                                       -seeds.index(int(name.split("-seed")[1]))))]
            .info.run_id for model in models}
    logged = client.search_logged_models([experiment.experiment_id])
    run_ids = {by_name[name].info.run_id for name in expected}
    assert sorted(m.source_run_id for m in logged if m.source_run_id in run_ids) == sorted(best)
    assert {run_id for run_id in run_ids if client.get_run(run_id).data.tags.get("tagger") == "logged"} == best
    for model in logged:
        if model.source_run_id in run_ids:
            assert model.name == "tagger"
            artifacts = {Path(a.path).name for a in client.list_logged_model_artifacts(model.model_id, "artifacts")}
            assert {"tagger.keras", "frozen_rows.npy"} <= artifacts, artifacts
    return by_name


def logged_tagger_run(client, experiment_id: str, model: str, experiment_name: str | None = None):
    """The training run of `model` that holds its logged tagger (its best seed on dev)."""
    query = f"tags.model = '{model}' and tags.tagger = 'logged'"
    if experiment_name:
        query += f" and tags.dvc_experiment = '{experiment_name}'"
    return client.search_runs([experiment_id], query)[0]

"""Experiments end to end in the tiny project (tests/tiny_project.py), from its data and vocabularies:
a parallel sweep of queued experiments on a Ray cluster through the team MLflow server, and a
search (pipeline.cli.search) ranking its points on dev. (That an experiment in DVC's temporary copy
logs to the repository's own store is checked by the quick run, tests/test_quick_run.py.)"""
import json
import re
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.conftest import free_port, serving
from tests.tiny_project import DVC, SEEDS, check_mlflow_runs, logged_tagger_run, run, run_names, tiny_project

pytestmark = pytest.mark.slow  # every experiment trains and evaluates

# queued experiments train one seed of two taggers (one Ray round), to keep the suite short;
# `~models.char_lstm` is Hydra's delete, as a user drops a tagger from one experiment
QUEUED_SEEDS, QUEUED_MODELS = [1], ("baseline", "char_cnn")
SWEEP_PARAMS = ["train.seeds=[1]", "~models.char_lstm", "compare=[[baseline,char_cnn]]"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_data):
    """The tiny project with its data and vocabularies, in DVC's cache for the experiments' copies."""
    repo = tiny_project(tmp_path_factory.mktemp("project"), shared_data)
    run([*DVC, "repro", "vocab", "char_vocab"], repo)
    return repo


def run_queue(repo, names_and_params, jobs, tracking_uri=None, ray_address=None, timeout=900):
    """Queue experiments, run them with `dvc queue start -j`, wait, stop the workers; return the final status."""
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", "base"], repo)
    for name, param in names_and_params:
        changes = [arg for change in [param, *SWEEP_PARAMS] for arg in ("-S", change)]
        run([*DVC, "exp", "run", "--queue", "-n", name, *changes], repo)
    try:
        run([*DVC, "queue", "start", "-j", str(jobs)], repo, tracking_uri=tracking_uri, ray_address=ray_address)
        deadline = time.monotonic() + timeout
        while re.search(r"\b(Queued|Running)\b", status := run([*DVC, "queue", "status"], repo).stdout):
            assert time.monotonic() < deadline, status
            time.sleep(5)
    finally:
        run([*DVC, "queue", "stop"], repo, check=False)
        while "0 active, 0 idle" not in run([*DVC, "queue", "status"], repo).stdout:
            time.sleep(1)
    for name, _ in names_and_params:
        # the Created column is "10:32 PM" today and "Dec 01, 2026" for an earlier day (a run across midnight)
        assert re.search(rf"^\S+\s+{name}\s.*\sSuccess\s*$", status, re.M), status
    return status


@pytest.fixture
def team_server(tmp_path, postgres_url):
    """The team MLflow of the README: `python -m pipeline.cli.tracking_server` on a real PostgreSQL,
    with proxied artifacts; yields the MLFLOW_TRACKING_URI it prints."""
    port, log = free_port(), tmp_path / "server.log"
    with serving([sys.executable, "-m", "pipeline.cli.tracking_server", "--database", postgres_url, "--artifacts",
                  str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                 port, log) as url:
        assert f"export MLFLOW_TRACKING_URI={url}\n" in log.read_text()
        yield url


def test_parallel_sweep_on_a_ray_cluster_through_the_team_server_loses_nothing(repo, team_server, ray_cluster,
                                                                              monkeypatch):
    """`dvc queue start -j 2` on this machine, every training on a separate Ray worker node, every run
    in the PostgreSQL-backed team MLflow with its history and artifacts."""
    # two experiments start at once on 2 busy cores: give the one-worker server's health check time
    # (it failed once with the default 10 s while a repro ran beside the suite)
    monkeypatch.setenv("NER_TRACKING_TIMEOUT", "60")
    run_queue(repo, [("gru", "model.cell=gru"), ("simple", "model.cell=simple")], jobs=2,
              tracking_uri=team_server, ray_address=ray_cluster)
    client = mlflow.MlflowClient(team_server)
    for name in ("gru", "simple"):
        by_name = check_mlflow_runs(team_server, name, QUEUED_SEEDS, QUEUED_MODELS, ray_address=ray_cluster)
        assert by_name["char_cnn-seed1"].data.params["model.cell"] == name
        assert by_name["char_cnn-seed1"].info.artifact_uri.startswith("mlflow-artifacts:")
        # the head node has no CPUs: the tasks ran on the worker node
        assert len({by_name[run].data.tags["ray.node_id"] for run in run_names(QUEUED_SEEDS, QUEUED_MODELS)}) == 1
        best = logged_tagger_run(client, by_name["char-gain"].info.experiment_id, "char_cnn", name)
        model = client.search_logged_models([by_name["char-gain"].info.experiment_id],
                                            f"source_run_id = '{best.info.run_id}'")[0]
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(team_server)  # models:/ URIs resolve through the current store
        try:
            local = mlflow.artifacts.download_artifacts(f"models:/{model.model_id}")
        finally:
            mlflow.set_tracking_uri(previous)
        assert list(Path(local).rglob("tagger.keras"))  # uploaded through the server, and back


def test_a_search_trains_every_point_on_ray_ranks_on_dev_and_logs_parent_and_child_runs(repo, tmp_path):
    search = tmp_path / "tiny.yaml"
    search.write_text(yaml.safe_dump({
        "model": "char_cnn", "seeds": SEEDS, "base": {"train.epochs": 2},
        # two points (one Ray round per seed pair); the second changes train, model and vocab keys at once
        "points": {"adam": {}, "sgd_bioes_small_vocab": {
            "model.tag_scheme": "bioes", "train.optimizer": "sgd", "train.learning_rate": 0.1, "train.lr_decay": 0.5,
            "vocab.pretrained_words": 50, "model.word_dropout": 0.1}}}))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # the pipeline's status before the search: data and vocabularies made, nothing trained
    status_before = run([sys.executable, "-m", "dvc", "status"], repo).stdout
    result = run([sys.executable, "-m", "pipeline.cli.search", str(search)], repo, tracking_uri=store)
    report = json.loads((repo / "reports/search/tiny.json").read_text())
    ranking = report["ranking"]
    assert sorted(row["point"] for row in ranking) == ["adam", "sgd_bioes_small_vocab"]
    assert [row["dev_f1_mean"] for row in ranking] == sorted((row["dev_f1_mean"] for row in ranking), reverse=True)
    assert all(sorted(row["dev_f1"]) == ["1", "2"] and len(row["mlflow_run_ids"]) == 2 for row in ranking)
    assert f'"best": "{ranking[0]["point"]}"' in result.stdout
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("ner-search")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.run_name == "search-tiny" and parent.info.status == "FINISHED"
    assert parent.data.tags["best_point"] == ranking[0]["point"]
    assert parent.data.metrics["best_dev_f1_mean"] == ranking[0]["dev_f1_mean"]
    children = {r.info.run_id: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert len(children) == 4
    for row in ranking:
        for run_id in row["mlflow_run_ids"]:
            child = children[run_id]
            assert child.data.tags["point"] == row["point"] and child.info.status == "FINISHED"
            assert round(child.data.metrics["best_dev_f1"], 2) == row["dev_f1"][child.data.tags["seed"]]
            assert len(client.get_metric_history(run_id, "val_f1")) == 2
            params = child.data.params
            changed = row["point"] == "sgd_bioes_small_vocab"
            assert params["vocab.pretrained_words"] == ("50" if changed else "5000")
            assert (params["model.tag_scheme"], params["model.word_dropout"]) == (
                ("bioes", "0.1") if changed else ("iob2", "0.05"))
    sgd = children[next(r for r in ranking if r["point"] == "sgd_bioes_small_vocab")["mlflow_run_ids"][0]]
    assert [m.value for m in client.get_metric_history(sgd.info.run_id, "learning_rate")] == \
        pytest.approx([0.1, 0.1 / 1.5])
    # run again with one more point: the four finished trainings are kept, only the new point trains
    spec = yaml.safe_load(search.read_text())
    spec["points"]["patient"] = {"train.patience": 1}
    search.write_text(yaml.safe_dump(spec))
    again = run([sys.executable, "-m", "pipeline.cli.search", str(search)], repo, tracking_uri=store)
    assert again.stdout.count("kept from reports/search/tiny.json") == 4
    assert len(re.findall(r"^search: patient seed \d done: dev F1 ", again.stdout, re.M)) == 2
    assert len(re.findall(r"^search: patient seed 1  epoch 1/2  loss ", again.stdout, re.M)) == 1  # progress
    assert "2 trainings on local Ray" in again.stdout
    report = json.loads((repo / "reports/search/tiny.json").read_text())
    assert report["complete"] and len(report["trials"]) == 6 and len(report["ranking"]) == 3
    assert {run_id for row in report["ranking"] for run_id in row["mlflow_run_ids"]} >= set(children)
    # the workspace's own runs, models and reports are untouched: a search is not a pipeline run
    assert client.get_experiment_by_name("ner-char-embeddings") is None
    assert run([sys.executable, "-m", "dvc", "status"], repo).stdout == status_before
    assert not (repo / "models").exists() and not (repo / "reports/metrics.json").exists()

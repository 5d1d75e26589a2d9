"""The documentation's recipes run as written: the Ray-cluster and team-MLflow commands of
docs/scale-out.md, taken from the page itself and run verbatim with bash against a real Ray
cluster, PostgreSQL and MLflow server on this machine, so the page and the code cannot drift."""
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.conftest import REPO_ROOT, commit_as_a_clone, copy_of_repo, serving, stop_ray_cluster
from tests.tiny_project import set_params

pytestmark = pytest.mark.slow  # a Ray cluster, PostgreSQL, an MLflow server and a dvc repro

PAGE = REPO_ROOT / "docs" / "scale-out.md"
RAY_PORT, MLFLOW_PORT = 6379, 5000  # as the page has them


def code_blocks(page: Path) -> dict[str, str]:
    """The page's fenced blocks that have a title (```bash title="..."), by title."""
    return {title: code for title, code in
            re.findall(r'^```bash title="([^"]+)"\n(.*?)^```', page.read_text(encoding="utf-8"), re.S | re.M)}


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def bash(code: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f"{code}\nfailed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_the_cluster_and_team_mlflow_recipes_run_as_written(tmp_path, shared_data, postgres_url, monkeypatch):
    blocks = code_blocks(PAGE)
    assert set(blocks) >= {"On the head node", "On each worker node", "On your machine, in the repository",
                           "On the MLflow server"}, set(blocks)
    for port in (RAY_PORT, MLFLOW_PORT):
        if port_in_use(port):
            pytest.fail(f"port {port}, which the recipe uses, is taken on this machine")
    home = tmp_path / "home"  # the head writes its token to ~/.ray/auth_token
    home.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("RAY_", "MLFLOW_")) and key != "HOME"}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", HOME=str(home),
               HEAD_IP="127.0.0.1", MLFLOW_HOST="127.0.0.1",
               # a database of its own on the session's PostgreSQL (the server creates it)
               MLFLOW_DATABASE=postgres_url.rsplit("/", 1)[0] + "/mlflow_recipe",
               MLFLOW_ADMIN_PASSWORD="a-long-recipe-password",
               NER_TRACKING_TIMEOUT="60")

    repo = copy_of_repo(tmp_path / "repo")
    set_params(repo, **{"data.source": str(shared_data), "data.limit": 100, "train.epochs": 2, "train.seeds": [1],
                        "train.batch_size": 16, "vocab.pretrained_words": 5000})
    params = yaml.safe_load((repo / "params.yaml").read_text())
    del params["models"]["char_lstm"]  # two trainings: one round on 2 cores
    params["compare"] = [["baseline", "char_cnn"]]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_as_a_clone(repo)
    server_folder = copy_of_repo(tmp_path / "mlflow-server")
    try:
        head = bash(blocks["On the head node"], tmp_path, env)
        token = (home / ".ray" / "auth_token").read_text().strip()
        assert token in head.stdout  # what the user copies as TOKEN
        env["TOKEN"] = token
        bash(blocks["On each worker node"], tmp_path, env)
        with serving(["bash", "-c", blocks["On the MLflow server"]], MLFLOW_PORT, tmp_path / "server.log",
                     cwd=server_folder, env=env) as url:
            assert "export MLFLOW_TRACKING_URI=http://" in (tmp_path / "server.log").read_text()
            with pytest.raises(urllib.error.HTTPError) as refused:  # it asks for a password
                urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30)
            assert refused.value.code == 401
            repro = bash(blocks["On your machine, in the repository"], repo, env)
            assert f"train: 2 trainings on Ray cluster 127.0.0.1:{RAY_PORT}" in repro.stdout, repro.stdout
            monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")  # the server asks everyone for a password
            monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", env["MLFLOW_ADMIN_PASSWORD"])
            client = mlflow.MlflowClient(url)
            runs = client.search_runs([client.get_experiment_by_name("ner-char-embeddings").experiment_id])
            trained = {run.info.run_name: run for run in runs if "seed" in run.data.tags}
            assert set(trained) == {"baseline-seed1", "char_cnn-seed1"}
            assert {run.data.tags["ray.cluster"] for run in trained.values()} == {f"127.0.0.1:{RAY_PORT}"}
            assert list((home / "mlflow-artifacts").rglob("tagger.keras"))  # stored by the server
    finally:
        stop_ray_cluster(RAY_PORT)
        shutil.rmtree(home, ignore_errors=True)

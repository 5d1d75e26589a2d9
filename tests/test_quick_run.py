"""The README's quick run, run exactly as documented (`python -m pipeline.cli.quick`) in a fresh copy
of the repository whose params.yaml points data.source at the test data. It is a DVC experiment run
in a temporary copy that DVC deletes (as queued experiments are): its MLflow runs and artifacts must
land in the repository's own store."""
import json
import re
import subprocess
import sys

import pytest
import yaml

from tests.conftest import commit_as_a_clone, copy_of_repo, run_in_own_session

pytestmark = pytest.mark.slow  # the whole pipeline: two trainings and the evaluation, 3 to 5 minutes


def test_the_quick_run_shows_the_char_gain_on_the_full_test_set(tmp_path, shared_data):
    repo = copy_of_repo(tmp_path / "clone")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["source"] = str(shared_data)  # as a user without internet would set it
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_as_a_clone(repo)
    before = (repo / "params.yaml").read_text()

    result = run_in_own_session([sys.executable, "-m", "pipeline.cli.quick"], repo, 1800)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "test: 3453 of 3453 sentences" in result.stdout and "train: 3000 of 14041 sentences" in result.stdout
    gain = re.search(r"^test: char_cnn - baseline: ([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\], p = ([\d.]+)$",
                     result.stdout, re.M)
    assert gain, result.stdout
    assert float(gain.group(1)) > 0  # the characters help, even on this small a slice
    assert result.stdout.rstrip().endswith("or the MLflow link above.")
    assert (repo / "params.yaml").read_text() == before  # the workspace is left as it was
    shown = json.loads(subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=repo,
                                      capture_output=True, text=True, check=True).stdout)
    experiments = [exp for commit in shown for exp in commit.get("experiments") or []]
    assert len(experiments) == 1
    metrics = experiments[0]["revs"][0]["data"]["metrics"]["reports/metrics.json"]["data"]
    assert metrics["gains"]["baseline_vs_char_cnn"]["test"]["f1"] == pytest.approx(float(gain.group(1)), abs=0.005)
    header, *rows = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--csv"], cwd=repo, capture_output=True,
                                   text=True, check=True).stdout.splitlines()
    assert {"char_gain.test.f1", "char_gain.test.p_value"} <= set(header.split(","))
    assert any(row.startswith(f"{experiments[0]['name']},") for row in rows)

    # the runs and their artifacts are in the repository's store, not in the deleted copy's
    import mlflow
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ner-char-embeddings").experiment_id],
                              f"tags.dvc_experiment = '{experiments[0]['name']}'")
    assert {run.info.run_name for run in runs} == {"baseline-seed42", "char_cnn-seed42", "char-gain"}
    for run in runs:
        assert run.info.artifact_uri.startswith((repo / "mlartifacts").as_uri()) and run.info.status == "FINISHED"
        assert client.list_artifacts(run.info.run_id), run.info.run_name

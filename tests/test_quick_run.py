"""The README's quick run, run exactly as documented (`python -m pipeline.cli.quick`) in a fresh copy
of the repository whose params.yaml points data.source at the test data."""
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

"""The speed benchmark measures older revisions with their own code: its measurement finds the
pipeline's pieces in today's layout or in the flat pipeline/ of earlier revisions."""
import os
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import REPO_ROOT

FLAT_LAYOUT = "1d8a3e0"  # the last revision before pipeline/ was split into subpackages
TOO_OLD = "2da6b9e"      # before build_trainable and models as params: not measurable
RESOLVE = """
import importlib.util, json
spec = importlib.util.spec_from_file_location("speed", {speed!r})
speed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(speed)
print(json.dumps({{name: speed.piece(name).__module__ for name in speed.PIECES}}))
"""


def tree_of(revision: str, folder):
    """The pipeline/ package of `revision`, extracted from the repository's history."""
    if subprocess.run(["git", "cat-file", "-e", f"{revision}^{{commit}}"], cwd=REPO_ROOT).returncode != 0:
        pytest.skip(f"{revision} is not in this clone's history (a shallow clone)")
    archive = folder / "tree.tar"
    subprocess.run(["git", "archive", "--output", str(archive), revision, "pipeline"], cwd=REPO_ROOT, check=True)
    with tarfile.open(archive) as tar:
        # the safe "data" filter where this Python has it (3.11.4 on); git archive of this repository either way
        tar.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return folder


def resolve(tree) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = RESOLVE.format(speed=str(REPO_ROOT / "benchmarks/speed.py"))
    return subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def test_the_measurement_finds_its_pieces_in_the_flat_layout_of_an_older_revision(tmp_path):
    done = resolve(tree_of(FLAT_LAYOUT, tmp_path))
    assert done.returncode == 0, done.stderr
    found = done.stdout.strip().splitlines()[-1]
    assert '"make_dataset": "pipeline.batches"' in found and '"build_trainable": "pipeline.model"' in found
    assert '"Tagger": "pipeline.tagger"' in found


def test_the_measurement_finds_its_pieces_in_today_s_layout():
    done = resolve(REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert '"make_dataset": "pipeline.training.batches"' in done.stdout


def test_a_revision_older_than_the_pieces_is_refused_in_one_line(tmp_path):
    done = resolve(tree_of(TOO_OLD, tmp_path))
    assert done.returncode == 1
    assert ("this revision's pipeline has no read_split (looked in pipeline.data.corpus, pipeline.corpus); "
            "--revision measures revisions from a84e99e on") in done.stderr


def test_a_timed_repro_that_fails_says_so_in_one_line_as_do_a_used_clone_folder_and_an_unknown_revision(
        tmp_path):
    clone = tmp_path / "clone"
    command = [sys.executable, "-m", "benchmarks.speed", "--repro-only", str(clone), "--source", str(tmp_path / "no-data")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    failed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert "no-data" in failed.stderr  # dvc's own line names the missing data folder
    assert failed.stderr.strip().splitlines()[-1].startswith(f"error: dvc repro failed in {clone} (exit status ")
    again = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert (again.returncode, again.stderr.strip()) == (
        1, f"error: {clone} already exists: name a new folder for the fresh clone")
    # a revision to time beside it that is not a commit: one line, before any clone is made
    other = tmp_path / "other"
    unknown = subprocess.run([*command[:4], str(other), *command[5:], "--revision", "no-such-rev"], cwd=REPO_ROOT,
                             env=env, capture_output=True, text=True, timeout=600)
    assert unknown.returncode == 1 and unknown.stderr.strip().count("\n") == 0, unknown.stderr
    assert unknown.stderr.startswith("error: --revision no-such-rev: not a commit of this repository")
    assert not list(tmp_path.glob("other*"))
    # with a revision, a used clone folder is refused before the older repro, not after it
    used = subprocess.run([*command, "--revision", "HEAD"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert (used.returncode, used.stderr.strip()) == (
        1, f"error: {clone} already exists: name a new folder for the fresh clone")
    assert not list(tmp_path.glob("clone-*"))

"""The speed benchmark measures older revisions with their own code: its measurement finds the
pipeline's pieces in today's layout or in the flat pipeline/ of earlier revisions."""
import json
import os
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import REPO_ROOT, copy_of_repo

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


@pytest.mark.slow  # a benchmark run
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


@pytest.mark.slow  # a benchmark run
def test_the_start_up_benchmark_times_help_beside_a_revision_and_names_an_unknown_command(tmp_path):
    repo = copy_of_repo(tmp_path / "repo")
    for git in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "now"]):
        subprocess.run(["git", *git], cwd=repo, check=True)
    command = [sys.executable, "-m", "benchmarks.startup", "--rounds", "1"]
    done = subprocess.run([*command, "--revision", "HEAD", "--commands", "train,download"], cwd=repo,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads((repo / "reports/startup.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert report["revision"] == head and report["machine"]["cores"] >= 1
    assert list(report["commands"]) == ["train", "download"]
    for row in report["commands"].values():
        assert row["seconds"] > 0 and row["cpu_seconds"] > 0 and row["revision"]["seconds"] > 0 and row["speedup"] > 0
    assert subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout.count("\n") == 1
    unknown = subprocess.run([*command, "--commands", "train,trian"], cwd=repo, capture_output=True, text=True,
                             timeout=600)
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: --commands: trian not among ner's commands (")
    assert unknown.stderr.strip().count("\n") == 0
    none = subprocess.run([*command[:3], "--rounds", "0"], cwd=repo, capture_output=True, text=True, timeout=600)
    assert none.returncode == 2 and none.stderr.strip().splitlines()[-1].endswith(
        "argument --rounds: expected a positive integer, got '0'")


@pytest.mark.slow  # a benchmark run
def test_the_lstm_bound_benchmark_times_the_layer_and_its_products_alone(tmp_path):
    repo = copy_of_repo(tmp_path)
    done = subprocess.run([sys.executable, "-m", "benchmarks.lstm_bound", "--batch", "8", "--steps", "3", "--repeats",
                           "2"], cwd=repo, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads((repo / "reports/lstm_bound.json").read_text())
    shapes = report["shapes"]
    assert (shapes["batch"], shapes["steps"], shapes["threads"]) == (8, 3, 1)
    assert shapes["input_width"] > 0 and shapes["units"] > 0
    # 3 products (gates, inputs' and kernel's gradients) x 2 directions x 3 steps, 2 flop per multiply-add
    assert report["gflop"] == round(3 * 2 * 3 * 2 * 8 * (shapes["input_width"] + shapes["units"]) * 4 * shapes["units"]
                                    / 1e9, 3)
    empty = subprocess.run([sys.executable, "-m", "benchmarks.lstm_bound", "--repeats", "0"], cwd=repo,
                           capture_output=True, text=True, timeout=600)
    assert empty.returncode == 2 and empty.stderr.strip().splitlines()[-1].endswith(
        "argument --repeats: expected a positive integer, got '0'")
    for key in ("layer_forward_backward_ms", "layer_forward_ms", "products_per_step_ms",
                "projection_once_then_recurrent_ms", "ops_unrolled_forward_backward_ms", "products_gflop_per_s",
                "layer_over_products"):
        assert report[key] > 0, key


@pytest.mark.parametrize("args", [[], ["models/none/tagger.keras", "8"]], ids=["nothing", "no such tagger"])
def test_the_inference_benchmark_s_own_process_taken_by_hand_is_one_line(args):
    """`--forward-alone` is how the inference benchmark starts the process that measures a forward
    pass; typed by hand, it answers in one line and names the command to run instead."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.inference", "--forward-alone", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: --forward-alone TAGGER_FILE BATCH_SIZE is the benchmark's own process")
    assert done.stderr.count("\n") == 1 and done.stderr.rstrip().endswith("run `python -m benchmarks.inference`")

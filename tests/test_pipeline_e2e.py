"""`dvc repro` of the tiny project (tests/tiny_project.py) end to end, once for the module, and what
reads its result: the reports, MLflow and its UI in a real browser, predict, `mlflow models serve`,
registered models, a DVC remote, the benchmarks, serial against parallel training, a new variant
by params alone, and the stages' answers to bad params, a truncated tagger and a server that is down."""
import csv
import json
import os
import re
import shutil
import sys
import urllib.request

import mlflow
import numpy as np
import pytest
import yaml

from pipeline.model.forward import saved_weights
from tests.browser import check_mlflow_ui
from tests.conftest import free_port, serving
from tests.tiny_project import (
    DVC,
    EPOCHS,
    LIMIT,
    MODELS,
    SEEDS,
    check_mlflow_runs,
    logged_tagger_run,
    run,
    set_params,
    tiny_project,
    training_copy,
)

pytestmark = pytest.mark.slow  # whole dvc repro runs in temporary repositories

SPLITS = ("dev", "test", "test_pp")
SCORES = {"f1", "precision", "recall", "accuracy", "macro_accuracy", "per_type", "seeds"}
COMPARISONS = ("baseline_vs_char_cnn", "baseline_vs_char_lstm", "char_cnn_vs_char_lstm")


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_data):
    repo = tiny_project(tmp_path_factory.mktemp("project"), shared_data)
    repro = run([*DVC, "repro"], repo)
    return repo, repro


def test_all_stages_run_and_metrics_have_the_documented_shape(repo):
    repo, repro = repo
    for stage in ("check_params", "download", "vocab", "char_vocab", "train", "evaluate"):
        assert f"Running stage '{stage}'" in repro.stdout
    # readable progress: a line per training per epoch, the stage's count, no TensorFlow or Ray noise
    for model in MODELS:
        for seed in SEEDS:
            for epoch in range(1, EPOCHS + 1):
                assert re.search(rf"^train: {model} seed {seed}  epoch {epoch}/{EPOCHS}  loss [\d.]+  dev F1 "
                                 r"[\d.]+  \d+ s$", repro.stdout, re.M), (model, seed, epoch)
            assert (repo / "logs" / "train" / f"{model}_seed_{seed}.log").is_file()
    assert f"train: {len(MODELS) * len(SEEDS)} of {len(MODELS) * len(SEEDS)} trainings done in" in repro.stdout
    assert "about" in repro.stdout and "left" in repro.stdout
    shown = repro.stdout + repro.stderr
    for noise in ("absl::InitializeLog", "oneDNN", "\x1b[", "repeated", "(train_pair pid=", "View run"):
        assert noise not in shown, noise
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics) == {*MODELS, "gains", "char_gain", "training", "breakdown"}
    assert set(metrics["gains"]) == set(COMPARISONS)
    assert metrics["char_gain"] == metrics["gains"]["baseline_vs_char_cnn"]  # kept for existing users
    for model in MODELS:
        assert set(metrics[model]) == set(SPLITS)
        for split in SPLITS:
            assert set(metrics[model][split]) == SCORES
            assert 0 <= metrics[model][split]["f1"] <= 100
        assert set(metrics[model]["test"]["seeds"]) == {"n", "mean", "std", "min", "max", "per_seed"}
        assert list(metrics[model]["test"]["seeds"]["per_seed"]) == ["1", "2"]
    for key in COMPARISONS:
        a, b = key.split("_vs_")
        for split in SPLITS:
            gain = metrics["gains"][key][split]
            assert set(gain) == {"f1", "ci95", "seeds", "p_value"}
            assert gain["f1"] == pytest.approx(metrics[b][split]["f1"] - metrics[a][split]["f1"], abs=1e-3)
            assert gain["ci95"][0] <= gain["f1"] <= gain["ci95"][1]
            assert gain["seeds"]["n"] == 2 and 0 <= gain["p_value"] <= 1
    breakdown = metrics["breakdown"]
    assert breakdown["word_categories"] == ["IV", "OOTV", "OOEV", "OOBV"]
    for split in SPLITS:
        assert set(breakdown[split]) == {"category", "type", "length", "casing"}
        for dimension, groups in breakdown[split].items():
            # every gold entity falls in exactly one group of each dimension
            assert sum(group["entities"] for group in groups.values()) == sum(
                metrics["baseline"][split]["per_type"][t]["support"] for t in metrics["baseline"][split]["per_type"])
            for group in groups.values():
                assert set(group["gains"]) == set(COMPARISONS) and set(group["f1"]) == set(MODELS)
        for entity_type, group in breakdown[split]["type"].items():  # the per-type F1 of the scores, again
            assert group["f1"]["char_cnn"] == pytest.approx(metrics["char_cnn"][split]["per_type"][entity_type]["f1"],
                                                            abs=1e-3)
    comparison = (repo / "reports/comparison.md").read_text()
    assert "| 2 |" in comparison and "approximate randomization" in comparison
    assert "| char_cnn -> char_lstm | test |" in comparison
    assert "## Where the gains come from" in comparison and "**By word category (Ma & Hovy 2016)**" in comparison
    examples = (repo / "reports/examples.md").read_text()
    assert examples.count("**Gained: ") == len(COMPARISONS) and "## baseline -> char_cnn" in examples
    for name in ("gains", "learning_curves", "per_type_f1", "confusion_matrix", "f1_per_seed", "breakdown"):
        assert (repo / f"reports/figures/{name}.png").stat().st_size > 10_000
    shown = json.loads(run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], repo).stdout)
    assert "reports/metrics.json" in json.dumps(shown)


def test_mlflow_holds_every_seed_run_and_the_summary(repo):
    repo, _ = repo
    by_name = check_mlflow_runs(f"sqlite:///{repo / 'mlflow.db'}")
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert by_name["char-gain"].data.metrics["char_gain_test"] == pytest.approx(
        metrics["char_gain"]["test"]["f1"], abs=1e-3)
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    char_runs = client.search_runs([by_name["char-gain"].info.experiment_id], "tags.model = 'char_cnn'")
    assert sorted(run.data.tags["seed"] for run in char_runs) == ["1", "2"]


def test_mlflow_ui_in_a_real_browser_opens_on_the_runs_with_the_answer(repo, tmp_path):
    repo, _ = repo
    check_mlflow_ui(f"sqlite:///{repo / 'mlflow.db'}", tmp_path / "ui.log", ("baseline-seed1", "char_cnn-seed1"))


def test_second_repro_does_nothing(repo):
    repo, _ = repo
    again = run([sys.executable, "-m", "dvc", "repro"], repo)
    assert "Running stage" not in again.stdout
    assert "Data and pipelines are up to date." in again.stdout


def learning_curve(folder):
    with open(folder / "history.csv") as file:
        return [(row["train_loss"], row["dev_f1"]) for row in csv.DictReader(file)]


def test_one_training_at_a_time_gives_the_same_models_as_two_at_once(repo, tmp_path):
    """The fixture's repro ran the trainings in parallel (local Ray, 2 at once on 2 cores, each worker
    process training several pairs in turn); serially, with the same params and seeds, in one worker
    process that starts fresh and then trains its second pair, every learning curve and every weight
    is identical to the last digit."""
    repo, _ = repo
    serial = training_copy(repo, tmp_path / "serial", ["char_cnn"], **{"cluster.local_cpus": 1})
    result = run([sys.executable, "-m", "pipeline.stages.train"], serial)
    assert "train: 2 trainings on local Ray: 1 CPUs" in result.stdout
    client = mlflow.MlflowClient(f"sqlite:///{serial / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ner-char-embeddings").experiment_id])
    assert len(runs) == 2 and len({run.data.tags["ray.worker_pid"] for run in runs}) == 1
    for seed in SEEDS:
        assert learning_curve(serial / f"models/char_cnn/seed_{seed}") == \
            learning_curve(repo / f"models/char_cnn/seed_{seed}")
        ours, theirs = (saved_weights(folder / f"models/char_cnn/seed_{seed}/tagger.keras") for folder in (serial, repo))
        assert ours.keys() == theirs.keys()
        for layer in ours:
            assert all(np.array_equal(a, b) for a, b in zip(ours[layer], theirs[layer], strict=True)), layer


def test_when_the_last_round_would_be_half_empty_every_training_starts_at_once(repo, tmp_path):
    """Three one-thread trainings on two cores (cores + cores // 2 on any machine) run side by side,
    not two and then one beside an idle core: each one's MLflow run starts before any has ended."""
    repo, _ = repo
    cores = os.cpu_count() or 1
    if not 2 <= cores <= 8:  # one core: nothing to share; many: that many trainings' memory at once
        pytest.skip(f"{cores} cores: the case is checked on 2 to 8")
    seeds = list(range(1, cores + cores // 2 + 1))
    copy = training_copy(repo, tmp_path / "copy", ["baseline"], **{"train.seeds": seeds, "train.epochs": 2})
    result = run([sys.executable, "-m", "pipeline.stages.train"], copy, timeout=900)
    assert f"{len(seeds)} of {len(seeds)} trainings done" in result.stdout
    client = mlflow.MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ner-char-embeddings").experiment_id])
    assert len(runs) == len(seeds)
    assert max(r.info.start_time for r in runs) < min(r.info.end_time for r in runs)


def test_a_truncated_tagger_is_never_up_to_date_and_dvc_repro_as_advised_retrains_it(repo, tmp_path):
    """The advice of a truncated tagger's error, followed: `dvc repro` trains that pair again (its
    file no longer has the SHA-256 its summary.json recorded), and the store and lock agree after."""
    repo, _ = repo
    copy = training_copy(repo, tmp_path / "copy", ["baseline"], **{"train.seeds": [1]})
    # the fixture's pair, trained with the same settings and inputs: `dvc repro` keeps it (its fingerprint)
    shutil.copytree(repo / "models/baseline/seed_1", copy / "models/baseline/seed_1")
    kept = run([sys.executable, "-m", "dvc", "repro", "train"], copy)
    assert "baseline seed 1 is up to date (same fingerprint), kept" in kept.stdout + kept.stderr
    tagger = copy / "models/baseline/seed_1/tagger.keras"
    whole = tagger.read_bytes()
    tagger.write_bytes(whole[: len(whole) // 2])
    command = [sys.executable, "-m", "pipeline.cli.predict", "--model", "models/baseline/seed_1"]
    broken = run(command, copy, check=False, input="Peter lives in Berlin.\n")
    assert broken.returncode == 1 and "not a complete .keras file (truncated or corrupt); train it again (dvc " \
        "repro)" in broken.stderr.strip().splitlines()[-1]
    again = run([sys.executable, "-m", "dvc", "repro", "train"], copy)  # the advice, followed
    assert "baseline seed 1 done" in again.stdout + again.stderr
    assert "up to date (same fingerprint), kept" not in again.stdout + again.stderr
    assert run(command, copy, input="Peter lives in Berlin.\n").returncode == 0
    assert run([sys.executable, "-m", "dvc", "status", "train"], copy).stdout.strip() == \
        "Data and pipelines are up to date."


def test_train_with_the_tracking_server_down_fails_at_once_and_keeps_the_models(repo):
    repo, _ = repo
    before = {path: path.stat().st_mtime_ns for path in (repo / "models").rglob("*")}
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    failed = run([sys.executable, "-m", "pipeline.stages.train"], repo, check=False, tracking_uri=url, timeout=120)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == (
        f"error: MLFLOW_TRACKING_URI={url}: the tracking server does not answer (ConnectionError); start it, "
        "or unset MLFLOW_TRACKING_URI to use the local store")
    assert "Traceback" not in failed.stderr
    assert {path: path.stat().st_mtime_ns for path in (repo / "models").rglob("*")} == before


def test_a_teammate_pulls_the_trained_models_from_a_dvc_remote_and_tags_without_training(repo, tmp_path):
    repo, _ = repo
    remote = tmp_path / "dvc-remote"  # a local-path remote; S3 and SSH remotes work the same way (README)
    run([*DVC, "remote", "add", "-d", "shared", str(remote)], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "trained, with the team's remote"], repo)
    run([*DVC, "push"], repo)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "models").exists()
    run([*DVC, "pull"], clone)
    assert "Data and pipelines are up to date." in run([*DVC, "status"], clone).stdout
    tagged = run([sys.executable, "-m", "pipeline.cli.predict", "--model", "models/char_cnn", "--format", "json"],
                 clone, input="Peter Blackburn lives in Berlin.\n")
    assert json.loads(tagged.stdout)["tokens"] == ["Peter", "Blackburn", "lives", "in", "Berlin", "."]
    run([*DVC, "remote", "remove", "shared"], repo)


def test_bad_param_value_stops_with_the_key_named(repo):
    repo, _ = repo
    original = (repo / "params.yaml").read_text()
    try:
        set_params(repo, **{"model.cell": "tcn"})
        failed = run([sys.executable, "-m", "dvc", "repro"], repo, check=False)
        assert failed.returncode != 0
        assert "error: params.yaml: model.cell: Input should be 'simple', 'gru' or 'lstm'" in failed.stderr
        # a misspelt section that no stage reads: DVC alone would call everything up to date
        (repo / "params.yaml").write_text(original + "trian:\n  epochs: 1\n")
        failed = run([sys.executable, "-m", "dvc", "repro"], repo, check=False)
        assert failed.returncode != 0 and "Running stage 'check_params'" in failed.stdout
        assert "error: params.yaml: trian: Extra inputs are not permitted" in failed.stderr
    finally:
        (repo / "params.yaml").write_text(original)
    # the failed train stage left models/ as it was (persist), and DVC's cache agrees with it
    run([*DVC, "checkout"], repo)
    assert (repo / "models/baseline/seed_1/tagger.keras").exists()
    assert "Data and pipelines are up to date." in run([*DVC, "status"], repo).stdout


def test_a_failed_evaluate_keeps_the_reports_it_had(repo):
    """The reports are not cached, so DVC could not bring them back: the stage keeps them (persist)
    until it succeeds."""
    repo, _ = repo
    reports = sorted(path for path in (repo / "reports").rglob("*") if path.is_file())
    before = {path: path.read_bytes() for path in reports}
    assert {"metrics.json", "comparison.md", "gains.png", "learning_curves.csv"} <= {path.name for path in reports}
    # evaluate stops on a tracking server that is down (before it scores anything); -f -s: only evaluate
    failed = run([*DVC, "repro", "-f", "-s", "evaluate"], repo, check=False,
                 tracking_uri=f"http://127.0.0.1:{free_port()}")
    assert re.findall(r"Running stage '([^']+)'", failed.stdout) == ["evaluate"] and failed.returncode != 0
    assert "the tracking server does not answer" in failed.stderr
    assert {path: path.read_bytes() for path in reports} == before
    assert "Data and pipelines are up to date." in run([*DVC, "status"], repo).stdout


def test_predict_on_a_conll_file_reproduces_the_evaluate_f1(repo):
    repo, _ = repo
    from pipeline.data.corpus import read_corpus
    conll = repo / "data/raw/test.txt"  # the normalized split evaluate scored (data.limit applied at download)
    sentences = read_corpus(conll)
    assert len(sentences) == LIMIT
    for model in MODELS:
        # the last one through `ner`, which runs the command as `python -m` does
        command = ["pipeline.cli.ner", "predict"] if model == MODELS[-1] else ["pipeline.cli.predict"]
        result = run([sys.executable, "-m", *command, "--model", f"models/{model}/seed_1", "--input", str(conll)], repo)
        f1 = float(re.search(r"FB1:\s+([\d.]+)", result.stderr).group(1))
        expected = json.loads((repo / "reports/metrics.json").read_text())[model]["test"]["seeds"]["per_seed"]["1"]
        assert f1 == pytest.approx(expected, abs=0.005) and f1 > 0  # the report prints 2 decimals
        assert sum(1 for line in result.stdout.splitlines() if line) == sum(len(s.tokens) for s in sentences)


def test_the_frozen_word_rows_are_one_file_for_all_taggers_and_dvc_checkout_restores_a_lost_one(repo):
    """Every tagger's folder holds the same frozen_rows.npy, which DVC's cache stores once; a
    missing one is named, and the advice (dvc checkout) brings it back."""
    repo, _ = repo
    files = sorted(repo.glob("models/*/seed_*/frozen_rows.npy"))
    assert len(files) == len(MODELS) * len(SEEDS)
    saved = files[0].read_bytes()
    assert all(file.read_bytes() == saved for file in files)
    cached = [path for path in (repo / ".dvc/cache").rglob("*") if path.is_file() and path.stat().st_size == len(saved)]
    assert len(cached) == 1  # one object for the nine copies
    frozen = repo / "models/baseline/seed_1/frozen_rows.npy"
    command = [sys.executable, "-m", "pipeline.cli.predict", "--model", "models/baseline/seed_1"]
    tagged = run(command, repo, input="Peter lives in Berlin.\n").stdout
    frozen.unlink()
    try:
        lost = run(command, repo, check=False, input="Peter lives in Berlin.\n")
        assert lost.returncode == 1
        assert lost.stderr.strip().splitlines()[-1] == (
            "error: models/baseline/seed_1/frozen_rows.npy: cannot read the tagger's frozen word vectors (No such file "
            "or directory); restore the folder (dvc checkout or dvc pull) or train it again (dvc repro)")
        run([sys.executable, "-m", "dvc", "checkout", "models"], repo)  # the advice, followed
        assert frozen.read_bytes() == saved
        assert run(command, repo, input="Peter lives in Berlin.\n").stdout == tagged
    finally:
        if not frozen.exists():
            frozen.write_bytes(saved)


def test_served_pyfunc_model_answers_like_the_python_api(repo, tmp_path):
    repo, _ = repo
    from pipeline import Tagger
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ner-char-embeddings")
    best = logged_tagger_run(client, experiment.experiment_id, "char_cnn")
    run_id = best.info.run_id
    texts = ["Peter Blackburn lives in Berlin.", "EU rejects German call to boycott British lamb."]
    expected = [r.to_dict() for r in Tagger.load(repo / f"models/char_cnn/seed_{best.data.tags['seed']}").tag(texts)]
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}",
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    with serving([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{run_id}/tagger", "--env-manager",
                  "local", "-h", "127.0.0.1", "-p", str(port)], port, tmp_path / "serve.log", cwd=repo, timeout=180,
                 health="/ping", env=env) as url:
        body = json.dumps({"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}).encode()
        request = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
    assert predictions == expected
    assert predictions[0]["tokens"] == ["Peter", "Blackburn", "lives", "in", "Berlin", "."]


def test_registered_models_load_by_name(repo):
    repo, _ = repo
    from pipeline import Tagger
    from pipeline.cli.predict import model_folder
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    versions = client.search_model_versions("name = 'ner-char-cnn'")
    assert versions  # the best seed on dev of each evaluation
    # the evaluation names the best tagger on dev `champion`, the others `challenger`
    dev_f1 = {model: json.loads((repo / "reports/metrics.json").read_text())[model]["dev"]["f1"] for model in MODELS}
    champion = max(MODELS, key=dev_f1.get)
    aliases = {model: set(client.get_registered_model("ner-" + model.replace("_", "-")).aliases) for model in MODELS}
    assert aliases == {model: {"champion" if model == champion else "challenger"} for model in MODELS}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{repo / 'mlflow.db'}"
    try:  # as `ner predict --model models:/...` resolves them: the tagger itself reads only folders
        tagger = Tagger.load(model_folder(f"models:/ner-char-cnn/{versions[0].version}"))
        best = Tagger.load(model_folder(f"models:/ner-{champion.replace('_', '-')}@champion"))
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    assert tagger.tag(["Peter lives in Berlin."])[0].tokens == ["Peter", "lives", "in", "Berlin", "."]
    assert best.tag(["Peter lives in Berlin."])[0].tokens == ["Peter", "lives", "in", "Berlin", "."]


def test_speed_benchmark_writes_its_report(repo):
    repo, _ = repo
    bad = run([sys.executable, "-m", "benchmarks.speed", "--models", "char_gru"], repo, check=False)
    assert bad.returncode == 2 and "--models: char_gru not in params.yaml's models" in bad.stderr
    run(["git", "add", "pipeline", "benchmarks", "dvc.yaml", "params.yaml"], repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", "the code to compare with"], repo)
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    # one tagger at one batch size, and the book's model (each measurement is a process of its own, the
    # tagger's twice with --revision): the suite's time
    run([sys.executable, "-m", "benchmarks.speed", "--epochs", "2", "--models", "char_cnn",
         "--large-batches", "", "--revision", "HEAD", "--profile"], repo)
    report = json.loads((repo / "reports/benchmark.json").read_text())
    assert report["revision"]["commit"] == head
    assert [(r["model"], r["batch_size"]) for r in report["revision"]["results"]] == [("char_cnn", 8)]
    assert set(report["speedups_over_revision"]) == {"char_cnn@8"}
    assert all(ratio > 0 for ratios in report["speedups_over_revision"].values() for ratio in ratios.values())
    for result in report["results"][:1] + report["revision"]["results"]:  # the profile, per layer, of each
        assert result["step_profile_ms"]["bidirectional"] > 0 and result["step_profile_ms"]["loss (crf)"] > 0, result
        assert result["step_profile_ms"]["char_encoder"] > 0, result
    assert run(["git", "worktree", "list"], repo).stdout.count("\n") == 1  # the temporary worktree is gone
    assert [(r["model"], r["batch_size"]) for r in report["results"]] == [("char_cnn", 8), ("book", 8)]
    for result in report["results"]:
        for key in ("train_sentences_per_second", "train_tokens_per_second", "inference_sentences_per_second",
                    "latency_ms_p50", "latency_ms_p95", "peak_memory_mib"):
            assert result[key] > 0, (result["model"], key)
        assert result["latency_ms_p50"] <= result["latency_ms_p95"]
        assert result["train_tokens_per_second"] > result["train_sentences_per_second"]
    assert report["machine"]["cores"] >= 1 and report["settings"]["book"]["padded_length"] == 40
    assert set(report["ratios_to_book"]) == {"char_cnn"}
    assert set(report["ratios_to_book"]["char_cnn"]) == {"train_sentences_per_second", "inference_sentences_per_second",
                                                          "latency_ms_p50", "peak_memory_mib"}


def test_inference_benchmark_compares_the_two_paths_on_the_trained_taggers(repo):
    repo, _ = repo
    bad = run([sys.executable, "-m", "benchmarks.inference", "--revision", "no-such-rev"], repo, check=False)
    assert bad.returncode == 1, bad.stderr
    assert bad.stderr.startswith("error: --revision no-such-rev: not a commit of this repository"), bad.stderr
    first = run(["git", "rev-list", "--max-parents=0", "HEAD"], repo).stdout.strip()  # the project's empty first commit
    old = run([sys.executable, "-m", "benchmarks.inference", "--revision", first], repo, check=False)
    assert old.returncode == 1 and old.stderr.count("\n") == 1, old.stderr
    assert old.stderr.startswith(f"error: --revision {first}: its pipeline has no NumPy forward pass"), old.stderr
    run(["git", "add", "pipeline", "benchmarks", "dvc.yaml", "params.yaml"], repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", "the code to compare with"], repo)
    run([sys.executable, "-m", "benchmarks.inference", "--rounds", "1", "--revision", "HEAD"], repo)
    report = json.loads((repo / "reports/inference.json").read_text())
    assert report["test_sentences"] == LIMIT and report["machine"]["cores"] >= 1
    assert report["revision"]["commit"] == run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    assert run(["git", "worktree", "list"], repo).stdout.count("\n") == 1  # the temporary worktree is gone
    assert set(report["models"]) == set(MODELS)
    for result in report["models"].values():
        assert result["same_tags_on_test"] is True  # the NumPy forward pass tags as the Keras graph
        assert result["same_tags_as_revision"] is True
        assert set(result["speedup_over_revision"]) == set(result["numpy_forward"])
        speedup = result["speedup"]  # the NumPy forward pass over the graph: above 1 is faster, throughputs too
        assert speedup["latency_ms_p50"] == round(result["keras_graph"]["latency_ms_p50"]
                                                  / result["numpy_forward"]["latency_ms_p50"], 2)
        assert speedup["second_pass_sentences_per_cpu_second"] == round(
            result["numpy_forward"]["second_pass_sentences_per_cpu_second"]
            / result["keras_graph"]["second_pass_sentences_per_cpu_second"], 2)
        for path in ("keras_graph", "numpy_forward", "revision_numpy_forward"):
            assert set(result[path]) == {"load_seconds", "first_pass_sentences_per_second",
                                         "second_pass_sentences_per_second", "second_pass_sentences_per_cpu_second",
                                         "latency_ms_p50", "latency_ms_p95"}
            assert all(value > 0 for value in result[path].values()), result
            assert result[path]["latency_ms_p50"] <= result[path]["latency_ms_p95"]


def test_a_new_variant_is_a_params_edit_only(repo):
    """A fourth tagger from existing parts (char_cnn without the casing feature): params.yaml names it
    and its comparison; nothing else changes, and only its training and the evaluation run."""
    repo, _ = repo
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["models"]["char_cnn_nocase"] = {"char_encoder": "cnn", "casing": False}
    params["compare"].append(["char_cnn", "char_cnn_nocase"])
    try:
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        result = run([*DVC, "repro"], repo)
        stages = re.findall(r"Running stage '([^']+)'", result.stdout)
        assert sorted(stages) == ["check_params", "evaluate", "train"] and stages.index("train") < stages.index("evaluate")
        # the six unchanged pairs are kept by their fingerprint: only the new tagger's seeds train
        kept = re.findall(r"train: (\S+) seed (\d+) is up to date", result.stdout)
        assert sorted(kept) == sorted((model, str(seed)) for model in MODELS for seed in SEEDS), result.stdout
        assert "train: 2 trainings on local Ray" in result.stdout
        metrics = json.loads((repo / "reports/metrics.json").read_text())
        assert set(metrics["gains"]["char_cnn_vs_char_cnn_nocase"]) == set(SPLITS)
        curves = (repo / "reports/plots/learning_curves.csv").read_text().splitlines()
        assert {line.split(",")[0] for line in curves[1:]} == {*MODELS, "char_cnn_nocase"}
        plots = json.loads(run([*DVC, "plots", "show", "--json"], repo).stdout)
        assert not plots.get("errors"), plots["errors"]
        curve = next(p for p in plots["data"]["Dev entity F1 per epoch (mean over seeds)"] if p["type"] == "vega")
        assert curve["content"]["encoding"]["color"]["field"] == "model"
        assert {row["model"] for row in curve["content"]["data"]["values"]} == {*MODELS, "char_cnn_nocase"}
        with open(repo / "models/char_cnn_nocase/seed_1/summary.json") as file:
            run_id = json.load(file)["mlflow_run_id"]
        logged = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_run(run_id).data.params
        assert (logged["model.casing"], logged["model.char_encoder"]) == ("False", "cnn")
    finally:
        (repo / "params.yaml").write_text(original)

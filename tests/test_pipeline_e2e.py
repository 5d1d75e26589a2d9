"""`dvc repro`, `dvc exp run --queue`, a parallel sweep through an MLflow server, predict and
`mlflow models serve`, end to end in a temporary git repo: real CoNLL data (100 sentences per
split), 3 epochs, 2 seeds."""
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import psutil
import pytest
import yaml

from tests.browser import check_mlflow_ui
from tests.conftest import REPO_ROOT, free_port, serving

pytestmark = pytest.mark.slow  # whole dvc repro runs in temporary repositories

SPLITS = ("dev", "test", "test_pp")
SCORES = {"f1", "precision", "recall", "accuracy", "macro_accuracy", "per_type", "seeds"}
SEEDS = [1, 2]
LIMIT, EPOCHS = 100, 3  # sentences per split and epochs: just enough to find some entities
MODELS = ("baseline", "char_cnn", "char_lstm")
COMPARISONS = ("baseline_vs_char_cnn", "baseline_vs_char_lstm", "char_cnn_vs_char_lstm")
# queued experiments train one seed of two taggers (one Ray round on 2 cores), to keep the suite
# short; `~models.char_lstm` is Hydra's delete, as a user drops a tagger from one experiment
QUEUED_SEEDS, QUEUED_MODELS = [1], ("baseline", "char_cnn")
SWEEP_PARAMS = ["train.seeds=[1]", "~models.char_lstm", "compare=[[baseline,char_cnn]]"]


def run_names(seeds, models=MODELS):
    return {f"{model}-seed{seed}" for model in models for seed in seeds}


RUN_NAMES = run_names(SEEDS)


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


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_data):
    repo = tmp_path_factory.mktemp("project")
    for name in ("pipeline", "benchmarks", "dvc.yaml", "params.yaml", ".gitignore"):
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, repo / name)
    set_params(repo, **{"data.source": str(shared_data), "data.limit": LIMIT, "train.epochs": EPOCHS, "train.seeds": SEEDS,
                        "train.learning_rate": 0.02, "train.batch_size": 8, "mlflow.register": True,
                        "train.threads": 1,  # two trainings at once on 2 cores
                        "vocab.pretrained_words": 5000,
                        "evaluate.bootstrap_resamples": 1000, "evaluate.permutation_resamples": 1000})
    run(["git", "init", "-q"], repo)
    run(["git", "config", "user.name", "pipeline tests"], repo)  # CI machines may have no git identity
    run(["git", "config", "user.email", "tests@localhost"], repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", "init"], repo)
    run([sys.executable, "-m", "dvc", "init", "-q"], repo)
    shutil.copytree(REPO_ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")  # the project's plot templates
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], repo)
    repro = run([sys.executable, "-m", "dvc", "repro"], repo)
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


def learning_curve(folder):
    with open(folder / "history.csv") as file:
        return [(row["train_loss"], row["dev_f1"]) for row in csv.DictReader(file)]


def test_one_training_at_a_time_gives_the_same_models_as_two_at_once(repo, tmp_path):
    """The fixture's repro ran the trainings in parallel (local Ray, 2 at once on 2 cores); serially,
    with the same params and seeds, every learning curve is identical to the last digit."""
    repo, _ = repo
    serial = training_copy(repo, tmp_path / "serial", ["char_cnn"], **{"cluster.local_cpus": 1})
    result = run([sys.executable, "-m", "pipeline.stages.train"], serial)
    assert "train: 2 trainings on local Ray: 1 CPUs" in result.stdout
    for seed in SEEDS:
        assert learning_curve(serial / f"models/char_cnn/seed_{seed}") == \
            learning_curve(repo / f"models/char_cnn/seed_{seed}")


def test_a_killed_worker_is_retried_and_mlflow_gets_one_finished_run(repo, tmp_path):
    repo, _ = repo
    copy = training_copy(repo, tmp_path / "copy", ["baseline"], **{"train.seeds": [1], "train.epochs": 6})
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(name, None)
    stage = subprocess.Popen([sys.executable, "-m", "pipeline.stages.train"], cwd=copy, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        killed, deadline = None, time.monotonic() + 300
        while killed is None:  # local Ray's workers are this stage's descendants; kill the one training
            assert stage.poll() is None and time.monotonic() < deadline, stage.stdout.read()
            for process in psutil.Process(stage.pid).children(recursive=True):
                try:
                    if " ".join(process.cmdline()).startswith("ray::train_pair"):
                        time.sleep(2)  # let it get into the training
                        process.kill()
                        killed = process.pid
                        break
                except psutil.Error:
                    pass
            time.sleep(0.2)
        output, _ = stage.communicate(timeout=600)
    finally:
        if stage.poll() is None:  # the test failed: stop the stage (its local Ray goes with it)
            stage.terminate()
            stage.wait(timeout=60)
    assert stage.returncode == 0, output
    client = mlflow.MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ner-char-embeddings").experiment_id])
    assert [(r.info.run_name, r.info.status) for r in runs] == [("baseline-seed1", "FINISHED")]
    assert json.loads((copy / "models/baseline/seed_1/summary.json").read_text())["mlflow_run_id"] == runs[0].info.run_id
    assert len(client.get_metric_history(runs[0].info.run_id, "val_f1")) == 6  # no epoch logged twice
    assert not list((copy / "models").glob(".*"))  # no staging folder left


def command_of(process: psutil.Process) -> str:
    """Its command line; empty once it has gone (or is a zombie)."""
    try:
        return " ".join(process.cmdline()) if process.status() != psutil.STATUS_ZOMBIE else ""
    except psutil.Error:
        return ""


def test_kill_9_of_dvc_alone_leaves_no_orphan_training(repo, tmp_path):
    """`kill -9` of the dvc process only (not its group): its train stage is told by the kernel that
    its parent died, unwinds like Ctrl-C and takes its local Ray with it; nothing trains on."""
    repo, _ = repo
    copy = training_copy(repo, tmp_path / "copy", ["baseline"], **{"train.seeds": [1], "train.epochs": 30})
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(name, None)
    repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train"], cwd=copy, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        while not any(command_of(process).startswith("ray::train_pair") for process in family):
            assert repro.poll() is None and time.monotonic() < deadline, "no training started"
            time.sleep(0.5)
            family = psutil.Process(repro.pid).children(recursive=True)
        repro.kill()
        repro.wait(timeout=30)
        gone, alive = psutil.wait_procs(family, timeout=120)
        assert not [command_of(process) for process in alive if command_of(process)]
    finally:
        for process in family:
            with contextlib.suppress(psutil.Error):
                process.kill()


def test_kill_9_of_the_whole_repro_then_repro_again_loses_nothing_and_leaves_no_run_running(repo, tmp_path):
    """`kill -9` of dvc repro's process group while the driver has a run open (it logs a finished
    training): nothing can close that run then. The next `dvc repro` marks it KILLED, clears the
    staging folder and ends with every pair trained and logged once."""
    repo, _ = repo
    # two pairs: two moments with a run open (the driver logs a finished training in well under a second)
    copy = training_copy(repo, tmp_path / "copy", ["baseline"], **{"train.seeds": [1, 2]})
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(name, None)
    store = f"sqlite:///{copy / 'mlflow.db'}"
    repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train"], cwd=copy, env=env, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not running_runs(store):
            assert repro.poll() is None and time.monotonic() < deadline, "the repro ended before any run opened"
            time.sleep(0.01)
        family = psutil.Process(repro.pid).children(recursive=True)  # local Ray may start its own sessions
        os.killpg(repro.pid, signal.SIGKILL)
        for process in family:
            with contextlib.suppress(psutil.Error):
                process.kill()
        repro.wait(timeout=60)
    finally:
        if repro.poll() is None:
            os.killpg(repro.pid, signal.SIGKILL)
    orphans = running_runs(store)
    assert len(orphans) == 1  # what kill -9 leaves: the run the driver had open

    again = run([sys.executable, "-m", "dvc", "repro", "train"], copy)
    assert "was left RUNNING by process" in again.stderr and "marked KILLED" in again.stderr
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("ner-char-embeddings").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED", "KILLED"]  # both pairs, once each
    assert [r.info.run_id for r in runs if r.info.status == "KILLED"] == orphans
    summary = json.loads((copy / "models/baseline/seed_1/summary.json").read_text())
    assert client.get_run(summary["mlflow_run_id"]).info.status == "FINISHED"
    assert not list((copy / "models").glob(".*"))  # no staging folder left
    assert run([sys.executable, "-m", "dvc", "status", "train"], copy).stdout.strip() == \
        "Data and pipelines are up to date."


def test_ctrl_c_during_dvc_repro_train_is_one_line_and_the_next_repro_goes_on(repo, tmp_path):
    """Ctrl-C in the terminal (SIGINT to dvc's whole process group) while a training runs: the
    stage says one line, no traceback; the open run ends FAILED and the next `dvc repro` trains
    what was left."""
    repo, _ = repo
    copy = training_copy(repo, tmp_path / "copy", ["baseline"], **{"train.seeds": [1, 2]})
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(name, None)
    # --force --no-run-cache: the trainings run, whatever an earlier test left in DVC's caches
    repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--force", "--no-run-cache", "train"], cwd=copy,
                             env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        seen = []
        for line in repro.stdout:  # the first epoch's progress line: trainings are under way
            seen.append(line)
            if re.search(r"epoch +1/", line):
                break
        os.killpg(repro.pid, signal.SIGINT)
        stdout, stderr = repro.communicate(timeout=120)
    finally:
        if repro.poll() is None:
            os.killpg(repro.pid, signal.SIGKILL)
    assert re.search(r"epoch +1/", seen[-1]), "".join(seen) + stdout + stderr  # interrupted mid-training
    assert repro.returncode != 0, "".join(seen) + stdout + stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "interrupted: what had finished is kept and nothing is half-written; run the same command again to go " \
           "on" in stderr
    assert len([line for line in stderr.splitlines() if line.strip()]) <= 3, stderr  # the stage's line and dvc's
    assert not list((copy / "models").glob(".*"))  # no staging folder left
    again = run([sys.executable, "-m", "dvc", "repro", "train"], copy)
    assert "Traceback" not in again.stderr
    for seed in (1, 2):
        assert (copy / f"models/baseline/seed_{seed}/tagger.keras").is_file()


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


def running_runs(store: str) -> list[str]:
    """Read-only, with sqlite3: an MLflow client here would race the stage's creation of the store."""
    path = Path(store.removeprefix("sqlite:///"))
    if not path.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)) as database:
            return [row[0] for row in database.execute("SELECT run_uuid FROM runs WHERE status = 'RUNNING'")]
    except sqlite3.OperationalError:  # the stage is still creating the tables
        return []


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
        result = run([sys.executable, "-m", "pipeline.cli.predict", "--model", f"models/{model}/seed_1",
                      "--input", str(conll)], repo)
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


DVC = [sys.executable, "-m", "dvc"]


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
        assert re.search(rf"{name}\s+\S+ \S+\s+Success", status), status
    return status


def test_queued_experiment_keeps_its_mlflow_runs_and_artifacts(repo):
    repo, _ = repo
    run_queue(repo, [("units8", "model.units=8")], jobs=1)
    # the experiment ran in a temporary copy that DVC deleted; its runs and artifacts are in the repo's store
    by_name = check_mlflow_runs(f"sqlite:///{repo / 'mlflow.db'}", "units8", QUEUED_SEEDS, QUEUED_MODELS)
    assert by_name["baseline-seed1"].data.params["model.units"] == "8"
    assert by_name["baseline-seed1"].info.artifact_uri.startswith((repo / "mlartifacts").as_uri())
    header, *rows = run([*DVC, "exp", "show", "--csv"], repo).stdout.splitlines()
    assert {"char_gain.test.f1", "char_gain.test.p_value"} <= set(header.split(","))
    assert any(row.startswith("units8,") for row in rows)


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
    repo, _ = repo
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
    run([sys.executable, "-m", "benchmarks.inference", "--rounds", "1"], repo)
    report = json.loads((repo / "reports/inference.json").read_text())
    assert report["test_sentences"] == LIMIT and report["machine"]["cores"] >= 1
    assert set(report["models"]) == set(MODELS)
    for result in report["models"].values():
        assert result["same_tags_on_test"] is True  # the NumPy forward pass tags as the Keras graph
        for path in ("keras_graph", "numpy_forward"):
            assert set(result[path]) == {"load_seconds", "first_pass_sentences_per_second",
                                         "second_pass_sentences_per_second", "latency_ms_p50", "latency_ms_p95"}
            assert all(value > 0 for value in result[path].values()), result
            assert result[path]["latency_ms_p50"] <= result[path]["latency_ms_p95"]


def test_a_new_variant_is_a_params_edit_only(repo):
    """A fourth tagger from existing parts: params.yaml names it and its comparison; nothing else changes,
    and only its training and the evaluation run."""
    repo, _ = repo
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["models"]["char_cnn_gru"] = {"char_encoder": "cnn", "cell": "gru"}
    params["compare"].append(["char_cnn", "char_cnn_gru"])
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
        assert set(metrics["gains"]["char_cnn_vs_char_cnn_gru"]) == set(SPLITS)
        curves = (repo / "reports/plots/learning_curves.csv").read_text().splitlines()
        assert {line.split(",")[0] for line in curves[1:]} == {*MODELS, "char_cnn_gru"}
        plots = json.loads(run([*DVC, "plots", "show", "--json"], repo).stdout)
        assert not plots.get("errors"), plots["errors"]
        curve = next(p for p in plots["data"]["Dev entity F1 per epoch (mean over seeds)"] if p["type"] == "vega")
        assert curve["content"]["encoding"]["color"]["field"] == "model"
        assert {row["model"] for row in curve["content"]["data"]["values"]} == {*MODELS, "char_cnn_gru"}
        with open(repo / "models/char_cnn_gru/seed_1/summary.json") as file:
            run_id = json.load(file)["mlflow_run_id"]
        logged = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_run(run_id).data.params
        assert (logged["model.cell"], logged["model.char_encoder"]) == ("gru", "cnn")
    finally:
        (repo / "params.yaml").write_text(original)


def test_a_search_trains_every_point_on_ray_ranks_on_dev_and_logs_parent_and_child_runs(repo, tmp_path):
    repo, _ = repo
    search = tmp_path / "tiny.yaml"
    search.write_text(yaml.safe_dump({
        "model": "char_cnn", "seeds": SEEDS, "base": {"train.epochs": 2},
        # two points (one Ray round per seed pair); the second changes train, model and vocab keys at once
        "points": {"adam": {}, "sgd_bioes_small_vocab": {
            "model.tag_scheme": "bioes", "train.optimizer": "sgd", "train.learning_rate": 0.1, "train.lr_decay": 0.5,
            "vocab.pretrained_words": 50, "model.word_dropout": 0.1}}}))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # what the pipeline's status is before the search (earlier tests may have left params edits behind)
    status_before = run([sys.executable, "-m", "dvc", "status"], repo).stdout
    metrics_before = (repo / "reports/metrics.json").read_bytes()
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
    assert (repo / "reports/metrics.json").read_bytes() == metrics_before

"""The cross-language study (pipeline/cli/study.py): each setting reaches DVC as the params the study
checked, the aggregation carries the evaluate stage's figures unchanged, a mistake in a study file
is one line naming it, and a whole tiny study runs as DVC experiments, one of its languages added
by params alone."""
import json
import subprocess
import sys

import pytest
import yaml

from pipeline.cli.study import check_overrides, hydra_value, read_study, setting_params
from pipeline.errors import PipelineError
from pipeline.evaluation.study import answer, results_table, setting_row, study_figure
from tests.conftest import REPO_ROOT, commit_as_a_clone, copy_of_repo, run_in_own_session, tiny_wikiann

LANGUAGES = REPO_ROOT / "studies" / "languages.yaml"


def test_every_setting_reaches_dvc_as_the_params_the_study_checked(monkeypatch):
    """read_study applies each setting's `-S` arguments with DVC's own parser (Hydra's grammar) to a
    copy of params.yaml and requires exactly the params it validated: the taggers left out, the
    pairs, the seeds, the recipe, the dataset; a value Hydra would misread stops it."""
    monkeypatch.chdir(REPO_ROOT)
    spec = read_study(LANGUAGES)
    spec["base"]["data.source"] = "/data/it's a mirror, 2026"  # quotes, spaces, a comma: quoted for Hydra
    for setting in spec["settings"]:
        check_overrides(spec, setting, setting_params(spec, setting, LANGUAGES), LANGUAGES)
    wikiann_de = setting_params(spec, "wikiann-de", LANGUAGES)
    assert list(wikiann_de.models) == ["baseline", "char_cnn"] and wikiann_de.train.batch_size == 32
    assert (wikiann_de.data.dataset, wikiann_de.data.language, wikiann_de.model.word_vectors) == ("wikiann", "de", "none")
    assert [hydra_value(v) for v in (None, True, 0.1, "none", "null", [[1, "a"]])] == [
        "null", "true", "0.1", "none", "'null'", "[[1,a]]"]

    # were the values not quoted for Hydra: the path would not parse, and `null` would become None
    monkeypatch.setattr("pipeline.cli.study.hydra_value", str)
    with pytest.raises(PipelineError) as error:
        check_overrides(spec, "wikiann-de", setting_params(spec, "wikiann-de", LANGUAGES), LANGUAGES)
    assert str(error.value).startswith(f"{LANGUAGES}: settings.wikiann-de: `dvc exp run -S` cannot read it")
    spec["base"]["data.source"] = "null"  # a folder named null
    with pytest.raises(PipelineError) as error:
        check_overrides(spec, "wikiann-de", setting_params(spec, "wikiann-de", LANGUAGES), LANGUAGES)
    assert str(error.value) == (f"{LANGUAGES}: settings.wikiann-de: `dvc exp run -S` would read it differently "
                                "(data.source: Input should be a valid string); quote the value in the study file")


@pytest.mark.parametrize("change, message", [
    ({"settings": {"wikiann-xx": {"recipe": "random_init", "data.dataset": "wikiann", "data.language": "xx"}}},
     "settings.wikiann-xx: params.yaml: data.language: 'xx' is not a WikiANN language"),
    ({"settings": {"glove-typo": {"recipe": "glove", "train.batchsize": 64}}},
     "settings.glove-typo: train.batchsize: no such key in params.yaml"),
    ({"settings": {"de": {"recipe": "random", "data.dataset": "wikiann"}}},
     "settings.de.recipe: 'random' is not one of recipes (glove, random_init)"),
    ({"models": ["baseline", "char_gru"]}, "models: expected two or more of params.yaml's models"),
])
def test_a_mistake_in_a_study_file_is_one_line_naming_the_setting_and_key(tmp_path, change, message):
    spec = {**yaml.safe_load(LANGUAGES.read_text()), **change}
    study = tmp_path / "bad.yaml"
    study.write_text(yaml.safe_dump(spec))
    result = subprocess.run([sys.executable, "-m", "pipeline.cli.study", str(study)], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: {study}: ") and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1


def test_the_study_reports_the_evaluate_stages_figures_unchanged(tmp_path):
    """Two real runs' metrics.json (the GloVe default and the random-initialised English run): each
    row holds their numbers as they are, and the answer ranks the settings by the gain."""
    glove = json.loads((REPO_ROOT / "reports/metrics.json").read_text())
    random_init = json.loads((REPO_ROOT / "reports/experiments/random_init_word_dropout_avx512_metrics.json").read_text())
    comparisons = [["baseline", "char_cnn"]]
    rows = [{**setting_row(name, metrics, comparisons, "test"), "experiment_seconds": None}
            for name, metrics in (("conll2003-glove", glove), ("conll2003-random", random_init))]
    for row, metrics in zip(rows, (glove, random_init)):
        assert row["models"]["char_cnn"]["test"]["mean"] == metrics["char_cnn"]["test"]["seeds"]["mean"]
        assert row["gains"]["baseline_vs_char_cnn"]["ci95"] == metrics["gains"]["baseline_vs_char_cnn"]["test"]["ci95"]
        oobv = metrics["breakdown"]["test"]["category"]["OOBV"]
        assert row["oov"]["OOBV"]["gains"]["baseline_vs_char_cnn"]["f1"] == oobv["gains"]["baseline_vs_char_cnn"]["f1"]
        total = sum(group["entities"] for group in metrics["breakdown"]["test"]["category"].values())
        assert row["oov"]["OOBV"]["share"] == round(100 * oobv["entities"] / total, 1)
    gains = {row["setting"]: row["gains"]["baseline_vs_char_cnn"]["f1"] for row in rows}
    most = max(gains, key=gains.get)
    text = answer(rows, comparisons[0], "test")
    assert f"Most on {most} ({gains[most]:+.2f} F1)" in text
    assert text.index(most) < text.index(min(gains, key=gains.get))
    assert f"| `conll2003-glove` | {glove['baseline']['test']['seeds']['mean']:.2f} ± " in results_table(
        rows, comparisons, "test")
    assert study_figure(rows, comparisons, "test", tmp_path / "study.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # two whole pipelines (download to evaluate) as DVC experiments: about 3 minutes
def test_a_tiny_study_runs_its_settings_as_dvc_experiments_a_fourth_language_by_params_alone(tmp_path,
                                                                                              wikiann_mirror):
    """A study of German and Spanish (a language no digest is pinned for) whose Spanish files are not
    in the mirror yet: German runs and is kept, Spanish fails in one line and no report is written;
    the advice followed (the files in place), the study runs only Spanish and reports both."""
    mirror = tmp_path / "mirror"
    (mirror / "wikiann").mkdir(parents=True)
    (mirror / "wikiann/de").symlink_to(wikiann_mirror / "wikiann/de")
    repo = copy_of_repo(tmp_path / "clone")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(source=str(mirror), limit=300)
    params["train"]["epochs"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    study = yaml.safe_load(LANGUAGES.read_text())
    study.update(seeds=[42], settings={"wikiann-de": study["settings"]["wikiann-de"],
                                       "wikiann-es": {"recipe": "random_init", "data.dataset": "wikiann",
                                                      "data.language": "es"}})
    (repo / "studies/tiny.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    commit_as_a_clone(repo)

    def run_study() -> subprocess.CompletedProcess:
        return run_in_own_session([sys.executable, "-m", "pipeline.cli.study", "studies/tiny.yaml"], repo, 1200,
                                  stderr=subprocess.STDOUT)

    # a setting whose files the mirror lacks: one line naming the setting; nothing half-reported
    failed = run_study()
    assert failed.returncode == 1, failed.stdout[-4000:]
    assert "'tiny-wikiann-de'" in failed.stdout  # German ran first
    assert f"{mirror}/wikiann/es/train" in failed.stdout  # the stage's own line: the path and the public URL
    assert failed.stdout.rstrip().splitlines()[-1] == (
        "error: studies/tiny.yaml: settings.wikiann-es: its experiment tiny-wikiann-es failed (the error above); "
        "the settings that finished are kept when the study runs again")
    assert not list((repo / "reports/study").glob("tiny.*"))

    # its advice, followed: the files in place, the study runs only the missing setting
    tiny_wikiann(mirror, wikiann_mirror, "es", sentences=300)
    again = run_study()
    assert again.returncode == 0, again.stdout[-4000:]
    assert "study: tiny-wikiann-de: kept" in again.stdout
    assert again.stdout.count("Reproducing experiment") == 1 and "'tiny-wikiann-es'" in again.stdout
    report = json.loads((repo / "reports/study/tiny.json").read_text())
    assert [row["setting"] for row in report["settings"]] == ["wikiann-de", "wikiann-es"]
    assert (repo / "reports/study/tiny.png").is_file() and "Where do characters help most?" in report["answer"]

    shown = json.loads(subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=repo,
                                      capture_output=True, text=True, check=True).stdout)
    experiments = {exp["name"]: exp["revs"][0]["data"] for commit in shown for exp in commit.get("experiments") or []}
    assert set(experiments) == {"tiny-wikiann-de", "tiny-wikiann-es"}
    for row in report["settings"]:
        data = experiments[row["experiment"]]
        assert data["params"]["params.yaml"]["data"]["data"]["language"] == row["setting"].split("-")[1]
        metrics = data["metrics"]["reports/metrics.json"]["data"]
        assert row["gains"]["baseline_vs_char_cnn"]["f1"] == metrics["gains"]["baseline_vs_char_cnn"]["test"]["f1"]

    import mlflow
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    summary = client.search_runs([client.get_experiment_by_name("ner-study").experiment_id])
    assert [run.info.run_name for run in summary] == ["study-tiny"]
    assert summary[0].data.metrics["wikiann-es.baseline_vs_char_cnn.gain"] == pytest.approx(
        report["settings"][1]["gains"]["baseline_vs_char_cnn"]["f1"])
    assert summary[0].data.tags["mlflow.note.content"].startswith(report["answer"])
    trained = client.search_runs([client.get_experiment_by_name("ner-char-embeddings").experiment_id],
                                 "tags.dvc_experiment = 'tiny-wikiann-es'")
    assert {run.info.run_name: run.data.params.get("data.language") for run in trained} == {
        "baseline-seed42": "es", "char_cnn-seed42": "es", "char-gain": None}  # the summary of its evaluation

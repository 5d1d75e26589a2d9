"""The search file: what it may say, and the ranking's order (training: tests/test_experiments.py)."""
import json

import pytest

from pipeline.cli.search import finished_trials, point_params, rank, read_search
from pipeline.errors import PipelineError
from pipeline.machine import VECTOR_FLAGS, cpuinfo_field, describe_machine


@pytest.mark.parametrize("text, message", [
    ("points: {a: {}}", r"expected the keys model, points and optionally seeds, base \(got points\)"),
    ("model: char_cnn\npoints: {}", r"points: expected at least one"),
    ("model: char_cnn\npoints: {a: 3}", r"points.a: expected a mapping"),
    ("model: char_cnn\npoints: {a: {train.nope: 1}}", r"points.a: train.nope: no such key in params.yaml"),
    ("model: char_cnn\npoints: {a: {train.optimizer: adagrad}}",
     r"points.a: params.yaml: train.optimizer: Input should be 'adam' or 'sgd'"),
    ("model: char_gru\npoints: {a: {}}", r"model: 'char_gru' is not in params.yaml's models"),
    ("model: char_cnn\nseed: [1]\npoints: {a: {}}", r"expected the keys model, points"),
    ("model: char_cnn\nseeds: [1, 1]\npoints: {a: {}}", r"seeds: expected a list of distinct non-negative integers"),
    ("model: char_cnn\nseeds: 42\npoints: {a: {}}", r"seeds: expected a list of distinct non-negative integers"),
    ("model: char_cnn\npoints: {a: {}, b: {train.threads: 2}}",
     r"train.threads: every point must train with the same number of threads \(got a: 1, b: 2\); set it in base"),
])
def test_a_bad_search_file_is_refused_before_any_training_with_the_point_and_key_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PipelineError, match=f"^{tmp_path / 'bad.yaml'}: {message}"):
        read_search(path)


def test_threads_set_in_base_as_advised_reach_every_point(tmp_path):
    path = tmp_path / "threads.yaml"
    path.write_text("model: char_cnn\nbase: {train.threads: 2}\npoints: {a: {}, b: {model.units: 50}}")
    spec = read_search(path)
    assert {point_params(spec, point, path).train.threads for point in spec["points"]} == {2}


def test_points_rank_by_mean_dev_f1_over_seeds_with_base_changes_shown():
    spec = {"model": "char_cnn", "seeds": [1, 2], "base": {"vocab.min_count": 1},
            "points": {"a": {}, "b": {"model.units": 200}}}
    results = {("a", 1): 90.0, ("a", 2): 92.0, ("b", 1): 93.0, ("b", 2): 90.0}
    results = {key: {"seed": key[1], "best_dev_f1": f1, "best_epoch": 3, "train_seconds": 10.0,
                     "mlflow_run_id": f"{key[0]}{key[1]}"} for key, f1 in results.items()}
    ranking = rank(spec, results)
    assert [row["point"] for row in ranking] == ["b", "a"]
    assert ranking[0]["dev_f1_mean"] == 91.5 and ranking[0]["dev_f1_std"] == 2.12
    assert ranking[0]["changes"] == {"vocab.min_count": 1, "model.units": 200}
    assert ranking[1]["dev_f1"] == {"1": 90.0, "2": 92.0}


def test_finished_trainings_are_kept_from_every_report_and_the_searchs_own_report_wins(tmp_path):
    def report(name, *trials):
        (tmp_path / f"{name}.json").write_text(json.dumps({"trials": [
            {"point": "p", "seed": 42, "key": key, "best_dev_f1": f1} for key, f1 in trials]}))
    report("other", ("k1", 90.0), ("k2", 91.0))
    report("mine", ("k2", 92.0))
    (tmp_path / "broken.json").write_text('{"trials": [')   # skipped: its trainings would run again
    kept = finished_trials(tmp_path / "mine.json")
    assert {key: (trial["best_dev_f1"], trial["kept_from"]) for key, trial in kept.items()} == {
        "k1": (90.0, str(tmp_path / "other.json")), "k2": (92.0, str(tmp_path / "mine.json"))}
    assert finished_trials(tmp_path / "missing" / "new.json") == {}


def test_reports_name_the_cpu_and_its_widest_vector_instructions():
    """Metrics can differ in the last digits between CPUs (oneDNN's AVX-512/AMX paths), so the
    search and benchmark reports say which one they ran on."""
    machine = describe_machine()
    assert machine["cores"] >= 1 and machine["cpu"]
    flags = (cpuinfo_field("flags") or "").split()
    present = [flag for flag in VECTOR_FLAGS if flag in flags]
    assert machine["vector_instructions"] == (present[0] if present else None)

"""The frontier's arithmetic: a shorter patience read from a longer training's history stops where
Keras' EarlyStopping would, and the rule picks the fastest recipe within one std of the best."""
import json

import keras
import numpy as np
import pytest

from benchmarks import frontier
from pipeline.errors import PipelineError

HISTORY = [{"epoch": e + 1, "dev_f1": f1, "seconds": 10.0}
           for e, f1 in enumerate([80.0, 85.0, 84.0, 86.0, 85.5, 85.9, 86.0, 85.0, 84.0])]


def keras_stop(history, patience):
    """Where Keras' own EarlyStopping stops on these dev F1s, and the best it restores."""
    stopper = keras.callbacks.EarlyStopping(monitor="val_f1", mode="max", patience=patience)
    stopper.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    stopper.model.stop_training = False  # as fit() sets it
    stopper.on_train_begin()
    for epoch, row in enumerate(history):
        stopper.on_epoch_end(epoch, {"val_f1": row["dev_f1"]})
        if stopper.model.stop_training:
            return max(r["dev_f1"] for r in history[: epoch + 1]), epoch + 1
    return max(r["dev_f1"] for r in history), len(history)


def test_a_shorter_patience_stops_where_keras_early_stopping_would():
    for patience in (1, 2, 3, 4):
        best, seconds, epochs = frontier.stopped(HISTORY, patience)
        assert (best, epochs) == keras_stop(HISTORY, patience)
        assert seconds == 10.0 * epochs


def test_the_rule_picks_the_fastest_recipe_within_one_std_of_the_best(tmp_path, monkeypatch):
    def trials(point, scores, seconds):
        return [{"point": point, "seed": seed, "history": [{"epoch": 1, "dev_f1": f1, "seconds": seconds}]}
                for seed, f1 in zip((42, 43, 44), scores)]
    report = {"points": {"slow": {}, "fast": {"train.batch_size": 128}, "fastest": {"train.batch_size": 256}},
              "trials": trials("slow", [90.0, 91.0, 92.0], 600) + trials("fast", [90.5, 90.0, 91.0], 200)
              + trials("fastest", [88.0, 88.5, 89.0], 100),
              "machine": {"cpu": "x"}, "date": "2026-11-30", "model": "char_cnn", "seeds": [42, 43, 44]}
    rows = frontier.recipes(report)
    best, chosen, threshold = frontier.choose(rows)
    assert best["point"] == "slow" and threshold == 90.0  # mean 91, std 1
    assert chosen["point"] == "fast" and chosen["minutes_mean"] == round(200 / 60, 2)
    assert np.isclose(chosen["dev_f1_mean"], 90.5)
    path = tmp_path / "search.json"
    path.write_text(json.dumps(report))
    monkeypatch.setattr(frontier, "FRONTIER_FILE", tmp_path / "frontier.json")
    monkeypatch.setattr(frontier, "FIGURE_FILE", tmp_path / "frontier.png")
    frontier.main([str(path)])
    written = json.loads((tmp_path / "frontier.json").read_text())
    assert written["chosen"]["recipe"] == "fast, patience 1" and written["best"] == "slow, patience 1"
    assert (tmp_path / "frontier.png").read_bytes()[:4] == b"\x89PNG"


def test_a_second_search_is_put_on_the_first_ones_clock(tmp_path, monkeypatch):
    def report(point, batch, seconds, scores):
        return {"points": {point: {}}, "base": {"train.batch_size": batch},
                "trials": [{"point": point, "seed": seed, "history": [{"epoch": 1, "dev_f1": 80.0, "seconds": seconds},
                                                                      {"epoch": 2, "dev_f1": f1, "seconds": seconds}]}
                           for seed, f1 in zip((42, 43, 44), scores)],
                "machine": {"cpu": point}, "date": "2026-12-01", "model": "char_cnn", "seeds": [42, 43, 44]}
    first, slower_machine = report("constant", 128, 10.0, [91.0, 92.0, 93.0]), report("linear", 128, 30.0, [92, 92, 92])
    assert frontier.clock(first, slower_machine, "second") == pytest.approx(1 / 3)
    paths = [tmp_path / "first.json", tmp_path / "second.json"]
    for path, content in zip(paths, (first, slower_machine)):
        path.write_text(json.dumps(content))
    monkeypatch.setattr(frontier, "FRONTIER_FILE", tmp_path / "frontier.json")
    monkeypatch.setattr(frontier, "FIGURE_FILE", tmp_path / "frontier.png")
    frontier.main([str(path) for path in paths])
    written = json.loads((tmp_path / "frontier.json").read_text())
    minutes = {row["recipe"]: row["minutes_mean"] for row in written["recipes"]}
    assert minutes["linear, patience 4"] == minutes["constant, patience 4"] == round(20 / 60, 2)  # 2 epochs x 10 s
    assert [search["clock_factor"] for search in written["searches"]] == [1.0, 0.333]

    with pytest.raises(PipelineError, match="^other: it shares no batch size with the first report"):
        frontier.clock(first, report("other", 32, 10.0, [90, 90, 90]), "other")


def test_a_missing_report_is_one_line_with_the_search_that_writes_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a checkout whose searches/ holds schedules.yaml and not other.yaml
    (tmp_path / "searches").mkdir()
    (tmp_path / "searches/schedules.yaml").write_text("model: char_cnn\n")
    for report, advice in (("schedules", "; run `python -m pipeline.cli.search searches/schedules.yaml` first"),
                           ("other", "")):
        with pytest.raises(SystemExit) as exited:
            frontier.main([f"reports/search/{report}.json"])
        assert exited.value.code == 1
        assert capsys.readouterr().err == f"error: reports/search/{report}.json: not found{advice}\n"

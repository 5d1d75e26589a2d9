"""The README's results table is copied by hand from the committed reports/metrics.json after each
`dvc repro`, and the results page's experiment tables from their reports/experiments files; this
keeps them from drifting apart (the README's did once, for a whole stop; four experiment tables
showed the default run's rows for days, from a search-and-replace of the default's figures)."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("dev", "test", "test_pp")


def results_rows() -> dict[str, list[str]]:
    """First table of the README's *Results* section: first cell -> the three F1 cells and the training time."""
    section = ROOT.joinpath("README.md").read_text(encoding="utf-8").split("## Results", 1)[1]
    table = re.search(r"^\|.*?(?=\n\n)", section, re.S | re.M).group(0)
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].replace("*", "").split(" (")[0]] = [cell.replace("*", "") for cell in cells[1:5]]
    return rows


def test_the_readme_results_table_is_the_committed_metrics():
    metrics = json.loads(ROOT.joinpath("reports/metrics.json").read_text(encoding="utf-8"))
    rows = results_rows()
    for model in ("baseline", "char_cnn", "char_lstm"):
        expected = [f"{metrics[model][split]['seeds']['mean']:.2f} ± {metrics[model][split]['seeds']['std']:.2f}"
                    for split in SPLITS]
        runs = metrics["training"][model].values()
        epochs = sorted(run["epochs_run"] for run in runs)
        expected.append(f"{sum(run['train_seconds'] for run in runs) / len(runs):.0f} s "
                        f"({epochs[0]}-{epochs[-1]} epochs)")
        assert rows[model] == expected, model
    for pair, gain in metrics["gains"].items():
        a, b = pair.split("_vs_")
        expected = []
        for split in SPLITS:
            x = gain[split]
            low, high = x["ci95"]
            expected.append(f"{x['f1']:+.2f} ± {x['seeds']['std']:.2f} [{low:+.2f}, {high:+.2f}], "
                            f"p = {x['p_value']:.3f}")
        assert rows[f"{b} - {a}"][:3] == expected, pair


# the results page's experiment tables, by their header's first cell, and the report each is copied from
EXPERIMENT_TABLES = {
    "model, random-initialised 100-d embeddings": "random_init_metrics.json",
    "model, random-initialised, no casing feature": "random_init_no_casing_metrics.json",
    "model, random-initialised 100-d, every train word, word dropout 0.1 (AVX2 machine)":
        "random_init_word_dropout_metrics.json",
    "model, random-initialised 100-d, every train word, word dropout 0.1 (AVX-512 machine)":
        "random_init_word_dropout_avx512_metrics.json",
}


def test_the_results_page_s_experiment_tables_are_their_reports():
    page = ROOT.joinpath("docs/results.md").read_text(encoding="utf-8")
    for header, report in EXPERIMENT_TABLES.items():
        metrics = json.loads(ROOT.joinpath("reports/experiments", report).read_text(encoding="utf-8"))
        table = page[page.index(f"| {header} |"):]
        table = table[:table.index("\n\n")]
        models = [line for line in table.splitlines()[2:] if line.split("|")[1].strip() in metrics]
        assert len(models) >= 2, header
        for line in models:
            model, *cells = [cell.strip().replace("*", "") for cell in line.strip("|").split("|")]
            expected = [f"{metrics[model][split]['seeds']['mean']:.2f} ± {metrics[model][split]['seeds']['std']:.2f}"
                        for split in SPLITS]
            assert cells[:3] == expected, (header, model)

"""The README's results table is copied by hand from the committed reports/metrics.json after each
`dvc repro`; this keeps the two from drifting apart (they did once, for a whole stop)."""
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

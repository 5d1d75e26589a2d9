"""A study's results across datasets: one row per setting, read from the reports/metrics.json that
each setting's DVC experiment wrote, so nothing here recomputes a score (the intervals and p-values
are the evaluate stage's). The table, the figure and the answer to "where do characters help most?"
are made from those rows alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.evaluation.plots import plt, save
from pipeline.evaluation.scoring import gain_key

# what the word categories of the breakdown mean (pipeline/data/lexicon.py); without pretrained
# vectors every word is "out of the embeddings", so only OOEV (seen in train) and OOBV are left
CATEGORY_MEANING = {"IV": "in train and in the vectors", "OOTV": "not in train, in the vectors",
                    "OOEV": "in train, not in the vectors", "OOBV": "in neither"}


def setting_row(setting: str, metrics: dict, comparisons: list[list[str]], split: str) -> dict:
    """What the study reports of one setting, from its experiment's metrics.json: each model's F1
    (mean and sd over seeds) on dev and `split`, each compared pair's gain with its interval and
    p-value, the breakdown by word category, and the training time."""
    models = list(dict.fromkeys(name for pair in comparisons for name in pair))
    row = {"setting": setting, "models": {}, "gains": {}, "oov": {}, "train_seconds": {}}
    for name in models:
        row["models"][name] = {s: {"mean": metrics[name][s]["seeds"]["mean"], "sd": metrics[name][s]["seeds"]["std"],
                                   "per_seed": metrics[name][s]["seeds"]["per_seed"]}
                               for s in ("dev", split)}
        row["train_seconds"][name] = sum(seed["train_seconds"] for seed in metrics["training"][name].values())
    for a, b in comparisons:
        gain = metrics["gains"][gain_key(a, b)][split]
        row["gains"][gain_key(a, b)] = {"f1": gain["f1"], "ci95": gain["ci95"], "p_value": gain["p_value"],
                                        "dev_f1": metrics["gains"][gain_key(a, b)]["dev"]["f1"]}
    groups = metrics["breakdown"][split]["category"]
    entities = sum(group["entities"] for group in groups.values())
    for category, group in groups.items():
        row["oov"][category] = {"entities": group["entities"],
                                "share": round(100 * group["entities"] / entities, 1) if entities else 0.0,
                                "f1": group["f1"],
                                "gains": {key: {"f1": gain["f1"], "ci95": gain["ci95"], "p_value": gain["p_value"]}
                                          for key, gain in group["gains"].items()}}
    return row


def signed(value: float) -> str:
    return f"{value:+.2f}"


def interval(gain: dict) -> str:
    return f"{signed(gain['f1'])} [{signed(gain['ci95'][0])}, {signed(gain['ci95'][1])}], p = {gain['p_value']:.3f}"


def results_table(rows: list[dict], comparisons: list[list[str]], split: str) -> str:
    """Markdown: one line per setting, each model's F1 (mean ± sd over seeds), each pair's gain, the
    trainings' time (summed, though they run two or more at once) and the experiment's wall time."""
    models = list(rows[0]["models"])
    header = ["setting", *(f"{name} {split} F1" for name in models), *(f"{b} - {a}" for a, b in comparisons),
              "training (min, all seeds)", "experiment (min)"]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for row in rows:
        cells = [f"`{row['setting']}`",
                 *(f"{row['models'][name][split]['mean']:.2f} ± {row['models'][name][split]['sd']:.2f}"
                   for name in models),
                 *(interval(row["gains"][gain_key(a, b)]) for a, b in comparisons),
                 f"{sum(row['train_seconds'].values()) / 60:.0f}",
                 f"{row['experiment_seconds'] / 60:.0f}" if row.get("experiment_seconds") else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def oov_table(rows: list[dict], comparison: list[str], split: str) -> str:
    """Markdown: per setting and word category, the share of entities and the pair's gain there."""
    a, b = comparison
    lines = [f"| setting | entities whose words are ... | share of {split} entities | {a} F1 | {b} F1 | gain |",
             "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        for category, group in row["oov"].items():
            lines.append(f"| `{row['setting']}` | {category}: {CATEGORY_MEANING[category]} | {group['share']:.1f}% "
                         f"({group['entities']:,}) | {group['f1'][a]:.2f} | {group['f1'][b]:.2f} "
                         f"| {interval(group['gains'][gain_key(a, b)])} |")
    return "\n".join(lines)


def answer(rows: list[dict], comparison: list[str], split: str) -> str:
    """Where do characters help most? The settings ranked by the pair's gain, with the share of
    entities that hold a word neither train nor the vectors know (OOBV), where the gain comes from."""
    a, b = comparison
    key = gain_key(a, b)
    ranked = sorted(rows, key=lambda row: -row["gains"][key]["f1"])
    best, worst = ranked[0], ranked[-1]
    significant = [row["setting"] for row in ranked if row["gains"][key]["p_value"] < 0.05]
    lines = [f"Where do characters help most? {b} over {a} on {split}, largest first: "
             + "; ".join(f"{row['setting']} {interval(row['gains'][key])}" for row in ranked) + ".",
             f"Most on {best['setting']} ({signed(best['gains'][key]['f1'])} F1), least on {worst['setting']} "
             f"({signed(worst['gains'][key]['f1'])}); significant at p < 0.05 on "
             f"{len(significant)} of {len(rows)} settings" + (f" ({', '.join(significant)})" if significant else "")
             + ".",
             "Entities with a word neither train nor the pretrained vectors know (OOBV), share of "
             f"{split} entities and {b}'s gain on them: "
             + "; ".join(f"{row['setting']} {row['oov']['OOBV']['share']:.1f}%, "
                         f"{signed(row['oov']['OOBV']['gains'][key]['f1'])}" for row in ranked if "OOBV" in row["oov"])
             + "."]
    return " ".join(lines)


def study_figure(rows: list[dict], comparisons: list[list[str]], split: str, path: Path) -> Path:
    """Left: each model's F1 per setting (mean over seeds, bar; sd, whisker). Right: each pair's
    gain per setting with its 95% paired bootstrap interval."""
    figure, (f1_axis, gain_axis) = plt.subplots(1, 2, figsize=(max(10, 2.4 * len(rows)), 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    settings = [row["setting"] for row in rows]
    models = list(rows[0]["models"])
    x = np.arange(len(rows))
    width = 0.8 / len(models)
    for i, (name, color) in enumerate(zip(models, colors)):
        f1_axis.bar(x + i * width, [row["models"][name][split]["mean"] for row in rows], width, color=color,
                    yerr=[row["models"][name][split]["sd"] for row in rows], capsize=3, label=name)
    low = min(row["models"][name][split]["mean"] for row in rows for name in models)
    f1_axis.set_ylim(max(0, low - 10), 100)
    f1_axis.set_xticks(x + width * (len(models) - 1) / 2, settings, rotation=20, fontsize=8)
    f1_axis.set(title=f"{split} entity F1 (mean ± sd over seeds)", ylabel="F1 (%)")
    width = 0.8 / len(comparisons)
    for i, ((a, b), color) in enumerate(zip(comparisons, colors[len(models):] + colors)):
        gains = [row["gains"][gain_key(a, b)] for row in rows]
        errors = [[g["f1"] - g["ci95"][0] for g in gains], [g["ci95"][1] - g["f1"] for g in gains]]
        gain_axis.bar(x + i * width, [g["f1"] for g in gains], width, yerr=errors, capsize=3, color=color,
                      label=f"{b} - {a}")
    gain_axis.axhline(0, color="black", linewidth=0.8)
    gain_axis.set_xticks(x + width * (len(comparisons) - 1) / 2, settings, rotation=20, fontsize=8)
    gain_axis.set(title=f"{split} F1 gain (95% paired bootstrap interval)", ylabel="F1 gain (points)")
    for axis in (f1_axis, gain_axis):
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3, axis="y")
    return save(figure, path)

"""Figures for the evaluate stage (PNG, for MLflow and `dvc plots show`)."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

from pipeline.evaluation.scoring import Evaluation, gain_key  # noqa: E402
from pipeline.files import write_bytes_atomic  # noqa: E402
from pipeline.layout import FIGURES_DIR  # noqa: E402


def save(figure, path: Path) -> Path:
    """Write the figure as PNG through files.py: atomic, and inside all_or_none() part of its set."""
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=110)
    plt.close(figure)
    write_bytes_atomic(path, png.getvalue())
    return path


def learning_curves(histories: dict[str, list[list[dict]]], path: Path) -> Path:
    """Train loss and dev entity F1 per epoch: one line per seed, one colour per model."""
    figure, (loss_axis, f1_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for color, (name, runs) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], histories.items()):
        for i, rows in enumerate(runs):
            epochs = [row["epoch"] for row in rows]
            label = name if i == 0 else None
            loss_axis.plot(epochs, [row["train_loss"] for row in rows], marker="o", color=color, alpha=0.7, label=label)
            f1_axis.plot(epochs, [row["dev_f1"] for row in rows], marker="o", color=color, alpha=0.7, label=label)
    loss_axis.set(title="Train loss", xlabel="epoch", ylabel="cross-entropy")
    f1_axis.set(title="Dev entity F1 (one line per seed)", xlabel="epoch", ylabel="F1 (%)")
    for axis in (loss_axis, f1_axis):
        axis.legend()
        axis.grid(alpha=0.3)
    return save(figure, path)


def f1_per_seed(metrics: dict, models: list[str], splits: list[str], path: Path) -> Path:
    """F1 of each model per seed, one panel per split; dashed lines mark the means."""
    figure, axes = plt.subplots(1, len(splits), figsize=(4.5 * len(splits), 4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, split in zip(axes[0], splits):
        for color, name in zip(colors, models):
            seeds = metrics[name][split]["seeds"]
            axis.plot(list(seeds["per_seed"]), list(seeds["per_seed"].values()), "o-", color=color, label=name)
            axis.axhline(seeds["mean"], color=color, linestyle="--", alpha=0.6)
        axis.set(title=split, xlabel="seed", ylabel="entity F1 (%)")
        axis.grid(alpha=0.3)
        axis.legend()
    return save(figure, path)


def per_type_f1(per_type: dict[str, dict[str, dict]], split: str, path: Path) -> Path:
    """Grouped bars: F1 per entity type, one bar per model."""
    types = sorted({t for scores in per_type.values() for t in scores})
    width = 0.8 / len(per_type)
    figure, axis = plt.subplots(figsize=(7, 4))
    for i, (name, scores) in enumerate(per_type.items()):
        values = [scores.get(t, {}).get("f1", 0.0) for t in types]
        bars = axis.bar(np.arange(len(types)) + i * width, values, width, label=name)
        axis.bar_label(bars, fmt="%.1f", fontsize=8)
    axis.set_xticks(np.arange(len(types)) + width * (len(per_type) - 1) / 2, types)
    axis.set(title=f"Entity F1 per type ({split})", ylabel="F1 (%)", ylim=(0, 105))
    axis.legend()
    return save(figure, path)


def confusion_matrices(gold: list[str], predicted: dict[str, list[str]], tags: list[str], split: str,
                       path: Path) -> Path:
    """Token-level tag confusion, each row normalised to the gold tag's count, one panel per model."""
    figure, axes = plt.subplots(1, len(predicted), figsize=(6 * len(predicted), 5.2))
    for axis, (name, pred) in zip(np.atleast_1d(axes), predicted.items()):
        counts = confusion_matrix(gold, pred, labels=tags)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for (row, column), share in np.ndenumerate(shares):
            if counts[row, column]:
                axis.text(column, row, f"{share:.2f}", ha="center", va="center", fontsize=7,
                          color="white" if share > 0.5 else "black")
        axis.set_xticks(range(len(tags)), tags, rotation=45, ha="right")
        axis.set_yticks(range(len(tags)), tags)
        axis.set(title=f"{name} ({split})", xlabel="predicted", ylabel="gold")
    return save(figure, path)


def gains(metrics: dict, comparisons: list[tuple[str, str]], splits: list[str], path: Path) -> Path:
    """Each compared pair's F1 gain per split: the mean over seeds with its 95% bootstrap interval."""
    figure, axis = plt.subplots(figsize=(max(6, 2.2 * len(comparisons) * len(splits) / 2), 4))
    width = 0.8 / len(splits)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (split, color) in enumerate(zip(splits, colors)):
        values = [metrics["gains"][gain_key(a, b)][split] for a, b in comparisons]
        x = np.arange(len(comparisons)) + i * width
        means = [gain["f1"] for gain in values]
        errors = [[gain["f1"] - gain["ci95"][0] for gain in values], [gain["ci95"][1] - gain["f1"] for gain in values]]
        axis.bar(x, means, width, yerr=errors, capsize=3, color=color, label=split)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_xticks(np.arange(len(comparisons)) + width * (len(splits) - 1) / 2, [f"{a} -> {b}" for a, b in comparisons])
    axis.set(title="F1 gain (mean over seeds, 95% paired bootstrap interval)", ylabel="F1 gain (points)")
    axis.legend()
    axis.grid(alpha=0.3, axis="y")
    return save(figure, path)


def breakdown(by_dimension: dict[str, dict], comparisons: list[tuple[str, str]], split: str, path: Path) -> Path:
    """The gain of each compared pair within each group of entities, one panel per way of grouping;
    each tick names the group and its number of gold entities."""
    figure, axes = plt.subplots(1, len(by_dimension), figsize=(4.2 * len(by_dimension), 4.2), squeeze=False)
    width = 0.8 / len(comparisons)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, (dimension, groups) in zip(axes[0], by_dimension.items()):
        for i, ((a, b), color) in enumerate(zip(comparisons, colors)):
            pair_gains = [result["gains"][gain_key(a, b)] for result in groups.values()]
            means = [gain["f1"] for gain in pair_gains]
            errors = [[gain["f1"] - gain["ci95"][0] for gain in pair_gains],
                      [gain["ci95"][1] - gain["f1"] for gain in pair_gains]]
            axis.bar(np.arange(len(groups)) + i * width, means, width, yerr=errors, capsize=2, color=color,
                     label=f"{a} -> {b}")
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_xticks(np.arange(len(groups)) + width * (len(comparisons) - 1) / 2,
                        [f"{group}\n{result['entities']:,}" for group, result in groups.items()],
                        rotation=45 if dimension == "casing" else 0, fontsize=8)
        axis.set(title=f"by {dimension}", ylabel="F1 gain (points)")
        axis.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=8)
    figure.suptitle(f"F1 gain per group of {split} entities (mean over seeds, 95% paired bootstrap interval; "
                    "ticks: group, gold entities)", fontsize=10)
    return save(figure, path)


def make_figures(evaluation: Evaluation) -> list[Path]:
    split, metrics, models = evaluation.figure_split, evaluation.metrics, evaluation.models
    flat = lambda sentences: [tag for tags in sentences for tag in tags]
    seeds = evaluation.seeds
    return [
        gains(metrics, evaluation.comparisons, evaluation.splits, FIGURES_DIR / "gains.png"),
        learning_curves({name: [run.history for run in runs] for name, runs in evaluation.runs.items()},
                        FIGURES_DIR / "learning_curves.png"),
        per_type_f1({name: metrics[name][split]["per_type"] for name in models}, split, FIGURES_DIR / "per_type_f1.png"),
        # pooled over seeds: every seed's predictions against the gold tags
        confusion_matrices(flat(evaluation.gold[split]) * len(seeds),
                           {name: [t for seed in seeds for t in flat(evaluation.predicted[split, name, seed])]
                            for name in models}, evaluation.tags, split, FIGURES_DIR / "confusion_matrix.png"),
        f1_per_seed(metrics, models, evaluation.splits, FIGURES_DIR / "f1_per_seed.png"),
        breakdown(metrics["breakdown"][split], evaluation.comparisons, split, FIGURES_DIR / "breakdown.png"),
    ]

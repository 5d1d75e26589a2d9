"""Figures for the evaluate stage (PNG, for MLflow and `dvc plots show`)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402


def save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def learning_curves(histories: dict[str, list[dict]], path: Path) -> Path:
    """Train loss and dev entity F1 per epoch, one line per model."""
    figure, (loss_axis, f1_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in histories.items():
        epochs = [row["epoch"] for row in rows]
        loss_axis.plot(epochs, [row["train_loss"] for row in rows], marker="o", label=name)
        f1_axis.plot(epochs, [row["dev_f1"] for row in rows], marker="o", label=name)
    loss_axis.set(title="Train loss", xlabel="epoch", ylabel="cross-entropy")
    f1_axis.set(title="Dev entity F1", xlabel="epoch", ylabel="F1 (%)")
    for axis in (loss_axis, f1_axis):
        axis.legend()
        axis.grid(alpha=0.3)
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

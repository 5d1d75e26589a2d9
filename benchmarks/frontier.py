"""The speed-accuracy frontier of the training recipe, from a search's report -> reports/frontier.json
and reports/frontier.png.

    python -m pipeline.cli.search searches/frontier.yaml   # the trainings (3 seeds per batch size)
    python -m benchmarks.frontier                          # the frontier and the recipe the rule picks

Every training of the search kept its dev F1 and time per epoch. Early stopping never changes an
epoch before the one it stops at, so a shorter schedule (a smaller patience) is read from the same
history: the training would have stopped at the first epoch `patience` epochs past its best, kept
the best epoch's weights, and taken the time of the epochs up to there.

The rule (docs/speed.md, written before the trainings ran): m(r) = mean best dev F1 over the seeds,
t(r) = mean minutes per training; b = the recipe with the highest m; the chosen recipe is the
fastest whose m(r) >= m(b) - s(b), s(b) the standard deviation of b's dev F1 over the seeds.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.errors import PipelineError, exits_cleanly  # noqa: E402
from pipeline.files import write_bytes_atomic, write_json_atomic  # noqa: E402
from pipeline.layout import REPORTS_DIR  # noqa: E402

PATIENCES = (1, 2, 3, 4)  # the search trains with patience 4 (searches/frontier.yaml); shorter ones are read from it
FRONTIER_FILE, FIGURE_FILE = REPORTS_DIR / "frontier.json", REPORTS_DIR / "frontier.png"


def stopped(history: list[dict], patience: int) -> tuple[float, float, int]:
    """(best dev F1, seconds, epochs run) of a training with this patience: Keras' EarlyStopping stops
    after `patience` epochs without a strictly better dev F1 and restores the best epoch."""
    best, best_epoch, seconds = float("-inf"), 0, 0.0
    for index, row in enumerate(history):
        seconds += row["seconds"]
        if row["dev_f1"] > best:
            best, best_epoch = row["dev_f1"], index
        elif index - best_epoch >= patience:
            return best, seconds, index + 1
    return best, seconds, len(history)


def recipes(report: dict) -> list[dict]:
    """One row per (point, patience): mean and std of dev F1 over the seeds, mean minutes per training."""
    rows = []
    for point, changes in report["points"].items():
        trials = [trial for trial in report["trials"] if trial["point"] == point]
        if any("history" not in trial for trial in trials):
            raise PipelineError(f"{point}: the report's trainings lack their per-epoch history (made by an "
                                "older search); run the search again")
        for patience in PATIENCES:
            results = [stopped(trial["history"], patience) for trial in trials]
            f1s = [f1 for f1, _, _ in results]
            rows.append({"recipe": f"{point}, patience {patience}", "point": point, "changes": changes,
                         "patience": patience, "seeds": len(trials),
                         "dev_f1_mean": round(statistics.mean(f1s), 2),
                         "dev_f1_std": round(statistics.stdev(f1s), 2) if len(f1s) > 1 else 0.0,
                         "minutes_mean": round(statistics.mean(seconds for _, seconds, _ in results) / 60, 2),
                         "epochs_mean": round(statistics.mean(epochs for _, _, epochs in results), 1)})
    return rows


def choose(rows: list[dict]) -> tuple[dict, dict, float]:
    """(the best recipe, the chosen one, the threshold) by the rule above."""
    best = max(rows, key=lambda row: row["dev_f1_mean"])
    threshold = best["dev_f1_mean"] - best["dev_f1_std"]
    chosen = min((row for row in rows if row["dev_f1_mean"] >= threshold),
                 key=lambda row: (row["minutes_mean"], -row["dev_f1_mean"]))
    return best, chosen, round(threshold, 2)


def figure(rows: list[dict], best: dict, chosen: dict, threshold: float) -> bytes:
    import io

    fig, ax = plt.subplots(figsize=(8, 5))
    points = list(dict.fromkeys(row["point"] for row in rows))
    for color, point in zip(plt.cm.tab10.colors, points):
        mine = [row for row in rows if row["point"] == point]
        ax.errorbar([row["minutes_mean"] for row in mine], [row["dev_f1_mean"] for row in mine],
                    yerr=[row["dev_f1_std"] for row in mine], fmt="o-", color=color, capsize=3, label=point)
        for row in mine:
            ax.annotate(f"p{row['patience']}", (row["minutes_mean"], row["dev_f1_mean"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
    ax.axhline(threshold, color="grey", linestyle="--", linewidth=1,
               label=f"best - 1 std ({best['recipe']}): {threshold:.2f}")
    ax.scatter([chosen["minutes_mean"]], [chosen["dev_f1_mean"]], s=250, facecolors="none", edgecolors="black",
               label=f"chosen: {chosen['recipe']}")
    ax.set_xlabel("minutes per training (mean over seeds; 2 trainings at once on 2 cores)")
    ax.set_ylabel("best dev F1 (mean over seeds, bar: std)")
    ax.set_title("char_cnn: speed against accuracy of the training recipe")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.frontier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", nargs="?", type=Path, default=REPORTS_DIR / "search" / "frontier.json",
                        help="the search's report (default: reports/search/frontier.json)")
    return parser


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        report = json.loads(args.report.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{args.report}: not found; run `python -m pipeline.cli.search searches/frontier.yaml` "
                            "first") from None
    except ValueError as error:
        raise PipelineError(f"{args.report}: not a search report ({error})") from None
    rows = recipes(report)
    best, chosen, threshold = choose(rows)
    write_json_atomic(FRONTIER_FILE, {"search": str(args.report), "machine": report["machine"],
                                      "date": report["date"], "model": report["model"], "seeds": report["seeds"],
                                      "rule": "fastest recipe whose mean dev F1 >= best mean - best's std over seeds",
                                      "best": best["recipe"], "threshold": threshold, "chosen": chosen,
                                      "recipes": sorted(rows, key=lambda row: row["minutes_mean"])})
    write_bytes_atomic(FIGURE_FILE, figure(rows, best, chosen, threshold))
    print(f"best: {best['recipe']} (dev F1 {best['dev_f1_mean']:.2f} ± {best['dev_f1_std']:.2f}, "
          f"{best['minutes_mean']:.1f} min); chosen: {chosen['recipe']} (dev F1 {chosen['dev_f1_mean']:.2f}, "
          f"{chosen['minutes_mean']:.1f} min per training) -> {FRONTIER_FILE}, {FIGURE_FILE}")


if __name__ == "__main__":
    main()

"""The speed-accuracy frontier of the training recipe, from searches' reports -> reports/frontier.json
and reports/frontier.png.

    python -m pipeline.cli.search searches/frontier.yaml   # the trainings (3 seeds per batch size)
    python -m pipeline.cli.search searches/schedules.yaml  # shorter schedules at batch 128
    python -m benchmarks.frontier                          # the frontier and the recipe the rule picks

Searches run on different days or machines: the minutes of every report after the first are put
on the first one's clock, multiplied by the ratio of their mean seconds per epoch at the batch
sizes both ran (an epoch's work depends on the batch size, not on the schedule). Dev F1 needs no
such care: the same params and seed give the same figures on every machine.

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
import itertools
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.errors import PipelineError, exits_cleanly  # noqa: E402
from pipeline.files import write_bytes_atomic, write_json_atomic  # noqa: E402
from pipeline.layout import REPORTS_DIR  # noqa: E402

PATIENCES = (1, 2, 3, 4)  # the searches train with patience 4; shorter ones are read from them
FRONTIER_FILE, FIGURE_FILE = REPORTS_DIR / "frontier.json", REPORTS_DIR / "frontier.png"
SEARCHES = (REPORTS_DIR / "search" / "frontier.json", REPORTS_DIR / "search" / "schedules.json")


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


def batch_size(report: dict, point: str) -> int | None:
    """The batch size `point` trains at, where the search sets it (its base or the point)."""
    return {**(report.get("base") or {}), **report["points"][point]}.get("train.batch_size")


def epoch_seconds(report: dict) -> dict[int, float]:
    """Batch size -> mean seconds per epoch over every epoch the report's trainings ran at it."""
    seconds: dict[int, list[float]] = {}
    for trial in report["trials"]:
        batch = batch_size(report, trial["point"])
        if batch is not None:
            seconds.setdefault(batch, []).extend(row["seconds"] for row in trial.get("history", []))
    return {batch: statistics.mean(values) for batch, values in seconds.items() if values}


def clock(reference: dict, report: dict, name: str) -> float:
    """The factor that puts `report`'s minutes on `reference`'s clock: the mean, over the batch sizes
    both ran, of the ratio of their seconds per epoch."""
    theirs, ours = epoch_seconds(reference), epoch_seconds(report)
    shared = sorted(theirs.keys() & ours.keys())
    if not shared:
        raise PipelineError(f"{name}: it shares no batch size with the first report, so its minutes cannot be "
                            "put on that report's clock; add a point at one of its batch sizes "
                            f"({', '.join(map(str, sorted(theirs))) or 'none set'})")
    return statistics.mean(theirs[batch] / ours[batch] for batch in shared)


def recipes(report: dict, clock_factor: float = 1.0) -> list[dict]:
    """One row per (point, patience): mean and std of dev F1 over the seeds, mean minutes per training
    (times `clock_factor`)."""
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
                         "minutes_mean": round(clock_factor * statistics.mean(s for _, s, _ in results) / 60, 2),
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
    for color, point in zip(itertools.cycle(plt.cm.tab20.colors), points):  # more points than colours: cycle
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
    ax.set_xlabel("minutes per training (mean over seeds; 2 trainings at once on 2 cores; the first search's clock)")
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
    parser.add_argument("reports", nargs="*", type=Path, default=list(SEARCHES),
                        help="the searches' reports, the first one's clock for all (default: "
                             + " ".join(str(path) for path in SEARCHES) + ")")
    return parser


def read_report(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        search = Path("searches") / f"{path.stem}.yaml"  # a search writes reports/search/<its name>.json
        advice = f"; run `python -m pipeline.cli.search {search}` first" if search.is_file() else ""
        raise PipelineError(f"{path}: not found{advice}") from None
    except ValueError as error:
        raise PipelineError(f"{path}: not a search report ({error})") from None


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    reports = [read_report(path) for path in args.reports]
    factors = [1.0] + [clock(reports[0], report, str(path)) for report, path in zip(reports[1:], args.reports[1:])]
    rows = [row for report, factor in zip(reports, factors) for row in recipes(report, factor)]
    if len({row["recipe"] for row in rows}) < len(rows):
        raise PipelineError(f"{', '.join(map(str, args.reports))}: two searches name a point alike; rename one")
    best, chosen, threshold = choose(rows)
    first = reports[0]
    write_json_atomic(FRONTIER_FILE, {"searches": [{"report": str(path), "date": report["date"],
                                                    "machine": report["machine"], "clock_factor": round(factor, 3)}
                                                   for path, report, factor in zip(args.reports, reports, factors)],
                                      "machine": first["machine"], "date": first["date"], "model": first["model"],
                                      "seeds": first["seeds"],
                                      "rule": "fastest recipe whose mean dev F1 >= best mean - best's std over seeds",
                                      "best": best["recipe"], "threshold": threshold, "chosen": chosen,
                                      "recipes": sorted(rows, key=lambda row: row["minutes_mean"])})
    write_bytes_atomic(FIGURE_FILE, figure(rows, best, chosen, threshold))
    print(f"best: {best['recipe']} (dev F1 {best['dev_f1_mean']:.2f} ± {best['dev_f1_std']:.2f}, "
          f"{best['minutes_mean']:.1f} min); chosen: {chosen['recipe']} (dev F1 {chosen['dev_f1_mean']:.2f}, "
          f"{chosen['minutes_mean']:.1f} min per training) -> {FRONTIER_FILE}, {FIGURE_FILE}")


if __name__ == "__main__":
    main()

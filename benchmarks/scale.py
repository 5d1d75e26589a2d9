"""Scale-out benchmark: the wall time of the train stage with local Ray sized to 1, 2, ... CPUs,
on the same trainings, side by side in one run (absolute times are noisy; the ratios are the result).

    python -m benchmarks.scale                       # 1 and every core of this machine
    python -m benchmarks.scale --cpus 1,4,8,16       # a bigger machine

Each size trains every (model, seed) of params.yaml in a temporary copy of the train stage's
inputs (data/raw and data/vocab from the last `dvc repro`), on the first --sentences training
sentences for --epochs epochs, with its own MLflow store. Writes reports/scale.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pipeline.corpus import read_split, write_normalized
from pipeline.errors import PipelineError, exits_cleanly
from pipeline.files import write_json_atomic
from pipeline.layout import DVC_FILE, PARAMS_FILE, REPORTS_DIR, VOCAB_DIR, split_file
from pipeline.params import load_params

SCALE_FILE = REPORTS_DIR / "scale.json"


def prepare(folder: Path, cpus: int, sentences: int, epochs: int) -> None:
    """A copy of the train stage's inputs with the benchmark's settings."""
    shutil.copytree("pipeline", folder / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(DVC_FILE, folder / DVC_FILE)
    shutil.copytree(VOCAB_DIR, folder / VOCAB_DIR)
    for split in ("train", "dev"):
        write_normalized(folder / split_file(split), read_split(split)[:sentences])
    params = yaml.safe_load(PARAMS_FILE.read_text())
    params["train"].update(epochs=epochs, patience=epochs)
    params["cluster"]["local_cpus"] = cpus
    (folder / PARAMS_FILE).write_text(yaml.safe_dump(params, sort_keys=False))


def time_train_stage(folder: Path) -> float:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    env.pop("RAY_ADDRESS", None)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pipeline.train"], cwd=folder, env=env, capture_output=True,
                            text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise PipelineError(f"the train stage failed in {folder}:\n{result.stderr[-2000:]}")
    return seconds


def positive_ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpus", type=positive_ints, default=sorted({1, os.cpu_count() or 1}),
                        help="local Ray sizes to compare (default: 1 and every core)")
    parser.add_argument("--sentences", type=int, default=2000, help="training (and dev) sentences per training")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    params = load_params()
    if not split_file("train").is_file():
        raise PipelineError(f"{split_file('train')}: not found; run `dvc repro` (or `dvc pull`) first")
    pairs = len(params.models) * len(params.train.seeds)
    results = []
    for cpus in args.cpus:
        with tempfile.TemporaryDirectory(prefix="ner-scale-") as temp:
            prepare(Path(temp), cpus, args.sentences, args.epochs)
            seconds = time_train_stage(Path(temp))
        at_once = max(1, cpus // params.train.threads)
        results.append({"local_cpus": cpus, "trainings_at_once": min(at_once, pairs), "wall_seconds": round(seconds, 1)})
        print(json.dumps(results[-1]), flush=True)
    serial = results[0]["wall_seconds"]
    for result in results:
        result["speedup_vs_first"] = round(serial / result["wall_seconds"], 2)
    report = {"command": " ".join(["python -m benchmarks.scale", *(argv if argv is not None else sys.argv[1:])]),
              "machine": {"cores": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version()},
              "workload": {"models": list(params.models), "seeds": params.train.seeds, "trainings": pairs,
                           "threads_per_training": params.train.threads, "train_sentences": args.sentences,
                           "epochs": args.epochs},
              "results": results}
    write_json_atomic(SCALE_FILE, report)
    print(f"wrote {SCALE_FILE}")


if __name__ == "__main__":
    main()

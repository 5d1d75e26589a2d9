"""Scale-out benchmark: the wall time of the train stage for several local Ray set-ups, on the
same trainings, side by side in one run (absolute times are noisy; the ratios are the result).

    python -m benchmarks.scale                             # this machine: serial vs the default
    python -m benchmarks.scale --setups 16:16,4:1,8:1,16:1 # a 16-core machine: 1, 4, 8, 16 at once

A set-up CPUS:THREADS is local Ray with CPUS CPUs and THREADS TensorFlow threads per training,
so CPUS // THREADS trainings run at once. The default compares every core on one training at a
time (how the stage ran before Ray) with one thread per training (the default params).

Each size trains every (model, seed) of params.yaml in a temporary copy of the train stage's
inputs (data/raw and data/vocab from the last `dvc repro`), on the first --sentences training
sentences for --epochs epochs, with its own MLflow store. Writes reports/scale.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pipeline.data.corpus import read_split, write_normalized
from pipeline.errors import PipelineError, exits_cleanly
from pipeline.files import write_json_atomic
from pipeline.layout import DVC_FILE, PARAMS_FILE, REPORTS_DIR, VOCAB_DIR, split_file
from pipeline.machine import describe_machine
from pipeline.params import load_params

SCALE_FILE = REPORTS_DIR / "scale.json"


def prepare(folder: Path, cpus: int, threads: int, sentences: int, epochs: int) -> None:
    """A copy of the train stage's inputs with the benchmark's settings."""
    shutil.copytree("pipeline", folder / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(DVC_FILE, folder / DVC_FILE)
    shutil.copytree(VOCAB_DIR, folder / VOCAB_DIR)
    for split in ("train", "dev"):
        write_normalized(folder / split_file(split), read_split(split)[:sentences])
    params = yaml.safe_load(PARAMS_FILE.read_text())
    params["train"].update(epochs=epochs, patience=epochs, threads=threads)
    params["cluster"]["local_cpus"] = cpus
    (folder / PARAMS_FILE).write_text(yaml.safe_dump(params, sort_keys=False))


def time_train_stage(folder: Path) -> float:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    env.pop("RAY_ADDRESS", None)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pipeline.stages.train"], cwd=folder, env=env, capture_output=True,
                            text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise PipelineError(f"the train stage failed in {folder}:\n{result.stderr[-2000:]}")
    return seconds


def setups(text: str) -> list[tuple[int, int]]:
    """"2:2,2:1" -> [(2, 2), (2, 1)]: (local Ray CPUs, threads per training)."""
    try:
        pairs = [tuple(int(number) for number in part.split(":")) for part in text.split(",")]
    except ValueError:
        pairs = []
    if not pairs or any(len(pair) != 2 or min(pair) < 1 or pair[1] > pair[0] for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected CPUS:THREADS pairs separated by commas, with "
                                         f"1 <= THREADS <= CPUS, got {text!r}")
    return pairs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cores = os.cpu_count() or 1
    parser.add_argument("--setups", type=setups, default=[(cores, cores), (cores, 1)],
                        help=f"CPUS:THREADS set-ups to compare (default: {cores}:{cores},{cores}:1)")
    parser.add_argument("--sentences", type=int, default=2000, help="training (and dev) sentences per training")
    parser.add_argument("--epochs", type=int, default=2)
    return parser


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    params = load_params()
    if not split_file("train").is_file():
        raise PipelineError(f"{split_file('train')}: not found; run `dvc repro` (or `dvc pull`) first")
    pairs = len(params.models) * len(params.train.seeds)
    results = []
    for cpus, threads in args.setups:
        with tempfile.TemporaryDirectory(prefix="ner-scale-") as temp:
            prepare(Path(temp), cpus, threads, args.sentences, args.epochs)
            seconds = time_train_stage(Path(temp))
        results.append({"local_cpus": cpus, "threads_per_training": threads,
                        "trainings_at_once": min(cpus // threads, pairs), "wall_seconds": round(seconds, 1)})
        print(json.dumps(results[-1]), flush=True)
    serial = results[0]["wall_seconds"]
    for result in results:
        result["speedup_vs_first"] = round(serial / result["wall_seconds"], 2)
    report = {"command": " ".join(["python -m benchmarks.scale", *(argv if argv is not None else sys.argv[1:])]),
              "machine": describe_machine(),
              "workload": {"models": list(params.models), "seeds": params.train.seeds, "trainings": pairs,
                           "train_sentences": args.sentences,
                           "epochs": args.epochs},
              "results": results}
    write_json_atomic(SCALE_FILE, report)
    print(f"wrote {SCALE_FILE}")


if __name__ == "__main__":
    main()

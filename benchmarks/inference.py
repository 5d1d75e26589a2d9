"""Inference benchmark of the trained taggers -> reports/inference.json.

    python -m benchmarks.inference            # after `dvc repro` (it reads models/ and data/raw)

For each tagger of params.yaml's `models` (its first seed), side by side: the Keras graph
(`keras.saving.load_model`, `predict_on_batch`, in this process) and the NumPy forward pass that
`Tagger.load` uses (pipeline/model/forward.py, in a process of its own each time, as a user's
`predict` or `evaluate` loads it):
- loading time;
- batched throughput on the test split (batches of evaluate.batch_size sentences): the first pass,
  which encodes every token it has not seen, and a second pass, which finds them all known, also
  per second of CPU (all of the process's threads: what it takes from other work on the machine);
- latency of one sentence: each of the first LATENCY_SENTENCES test sentences tagged alone, in
  order, by a freshly loaded tagger (its first words are new to it, later ones mostly known);
- whether both give the same tags on the whole test split.
Each figure is measured ROUNDS times, the two paths alternating, and the median reported, with
the machine; compare the two paths as ratios within one run.

    python -m benchmarks.inference --revision HEAD~1   # also that revision's NumPy forward pass

With --revision, that git revision's code (a temporary worktree) tags with the same taggers and
test split by this file's method, alternating with this tree's, and the report gives the ratios
and whether both gave the same tags. Any revision with the NumPy forward pass (737ea27 on) can be
measured; an older one is refused in one line.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

import pipeline  # noqa: F401  (first: TensorFlow is then imported without its start-up lines)
from pipeline.errors import PipelineError, exits_cleanly
from pipeline.files import write_json_atomic
from pipeline.layout import seed_folder
from pipeline.machine import describe_machine
from pipeline.model.trained import TAGGER_FILE

# Above: what every revision since the forward pass has, since --revision runs this file on that
# revision's code (`measure_forward_alone`).
FIRST_MEASURABLE = "737ea27"  # the first revision with the NumPy forward pass

REPORT = Path("reports/inference.json")
ONE = "--forward-alone"  # the private first argument of measure_forward_alone's process
LATENCY_SENTENCES = 300
ROUNDS = 3


def keras_graph(tagger_file: Path):
    """The tagger as the Keras graph tags: its saved model, with the frozen rows beside it."""
    import keras

    from pipeline.model import network as _custom_layers  # noqa: F401  (registers the custom layers)
    from pipeline.model.tagger import Tagger
    tagger = Tagger.of_graph(keras.saving.load_model(tagger_file), str(tagger_file))
    tagger.attach_frozen_rows(tagger_file.parent / "frozen_rows.npy")
    return tagger


def numpy_forward(tagger_file: Path):
    from pipeline.model.tagger import Tagger
    tagger = Tagger.from_file(tagger_file)
    assert tagger.forward is not None, f"{tagger_file}: the forward pass does not run this tagger"
    return tagger


def measure(load, tagger_file: Path, test: list[list[str]], batch_size: int) -> dict:
    started = time.perf_counter()
    tagger = load(tagger_file)
    load_seconds = time.perf_counter() - started
    latencies = []
    for tokens in test[:LATENCY_SENTENCES]:
        started = time.perf_counter()
        tagger.tag_tokens([tokens])
        latencies.append(time.perf_counter() - started)
    tagger = load(tagger_file)  # the batched passes start from a fresh tagger too
    passes, cpu, tags = [], [], None
    for _ in range(2):
        started, cpu_started = time.perf_counter(), time.process_time()
        tags = tagger.tag_tokens(test, batch_size)
        passes.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    latencies_ms = np.array(latencies[20:]) * 1000  # the Keras graph traces itself on its first calls
    return {"load_seconds": load_seconds, "first_pass_sentences_per_second": len(test) / passes[0],
            "second_pass_sentences_per_second": len(test) / passes[1],
            "second_pass_sentences_per_cpu_second": len(test) / cpu[1],  # all of the process's threads
            "latency_ms_p50": float(np.percentile(latencies_ms, 50)),
            "latency_ms_p95": float(np.percentile(latencies_ms, 95)), "tags": digest(tags)}


def digest(tags: list[list[str]]) -> str:
    return hashlib.sha256(json.dumps(tags).encode()).hexdigest()


def measure_forward_alone(tagger_file: Path, batch_size: int, code: Path = Path(".")) -> dict:
    """measure() of the NumPy forward pass in a process of its own, on the pipeline code of the tree
    `code` (this file runs by path with `code` first on the import path, its test split read there)."""
    command = [sys.executable, str(Path(__file__).resolve()), ONE, str(tagger_file.resolve()), str(batch_size)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=code,
                          env={**os.environ, "PYTHONPATH": str(code.resolve())})
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise PipelineError(f"the NumPy forward pass of {tagger_file} ({code}) failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_tokens() -> list[list[str]]:
    from pipeline.data.corpus import read_split
    return [s.tokens for s in read_split("test")]


def median_of(rounds: list[dict]) -> dict:
    return {key: round(statistics.median(r[key] for r in rounds), 2) for key in rounds[0] if key != "tags"}


def speedups(new: dict, old: dict) -> dict:
    """new / old for throughputs, old / new for times: above 1 is faster."""
    return {key: round(new[key] / old[key], 2) if "_per_" in key else round(old[key] / new[key], 2)
            for key in new}


def build_parser() -> argparse.ArgumentParser:
    from pipeline.stages.arguments import positive_int
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=positive_int, default=ROUNDS,
                        help="measurements per figure (median reported)")
    parser.add_argument("--revision", help="also this git revision's NumPy forward pass, alternating, for ratios")
    return parser


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from benchmarks.speed import revision_tree
    from pipeline.params import load_params
    params = load_params()
    test = test_tokens()
    taggers = {name: seed_folder(name, params.train.seeds[0]) / TAGGER_FILE for name in params.models}
    for tagger_file in taggers.values():
        if not tagger_file.is_file():
            raise PipelineError(f"{tagger_file}: no trained tagger; run `dvc repro` first")
    results = {}
    with revision_tree(args.revision) if args.revision else nullcontext((None, None)) as (tree, commit):
        if tree and not (tree / "pipeline/model/forward.py").is_file():
            raise PipelineError(f"--revision {args.revision}: its pipeline has no NumPy forward pass (pipeline/"
                                f"model/forward.py); --revision measures revisions from {FIRST_MEASURABLE} on")
        for name, tagger_file in taggers.items():
            rounds = {"keras": [], "numpy": [], "revision": []}
            for _ in range(args.rounds):
                rounds["keras"].append(measure(keras_graph, tagger_file, test, params.evaluate.batch_size))
                rounds["numpy"].append(measure_forward_alone(tagger_file, params.evaluate.batch_size))
                if tree:
                    rounds["revision"].append(measure_forward_alone(tagger_file, params.evaluate.batch_size, tree))
            same = rounds["keras"][0]["tags"] == rounds["numpy"][0]["tags"]
            keras_row, numpy_row = median_of(rounds["keras"]), median_of(rounds["numpy"])
            results[name] = {"tagger": str(tagger_file), "keras_graph": keras_row, "numpy_forward": numpy_row,
                             "same_tags_on_test": same, "speedup": speedups(numpy_row, keras_row)}
            line = (f"{name}: numpy forward {numpy_row['second_pass_sentences_per_second']:.0f} sentences/s (first "
                    f"pass {numpy_row['first_pass_sentences_per_second']:.0f}), p50 {numpy_row['latency_ms_p50']:.2f} "
                    f"ms; keras graph {keras_row['second_pass_sentences_per_second']:.0f} sentences/s, p50 "
                    f"{keras_row['latency_ms_p50']:.2f} ms; same tags: {same}")
            if tree:
                revision_row = median_of(rounds["revision"])
                results[name]["revision_numpy_forward"] = revision_row
                results[name]["same_tags_as_revision"] = rounds["revision"][0]["tags"] == rounds["numpy"][0]["tags"]
                results[name]["speedup_over_revision"] = speedups(numpy_row, revision_row)
                line += (f"; revision {revision_row['second_pass_sentences_per_second']:.0f} sentences/s, same tags: "
                         f"{results[name]['same_tags_as_revision']}")
            print(line)
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": describe_machine(),
              "command": "python -m benchmarks.inference " + " ".join(argv if argv is not None else sys.argv[1:]),
              "test_sentences": len(test), "batch_size": params.evaluate.batch_size, "rounds": args.rounds}
    if tree:
        report["revision"] = {"revision": args.revision, "commit": commit}
    write_json_atomic(REPORT, {**report, "models": results})


@exits_cleanly
def measure_alone(args: list[str]) -> None:
    """measure_forward_alone's process: TAGGER_FILE BATCH_SIZE -> its measurement, one JSON line."""
    import pipeline.model.tagger  # noqa: F401  (imported before the clock starts, as Keras is for the graph)
    if len(args) != 2 or not args[1].isdigit() or not Path(args[0]).is_file():
        raise PipelineError(f"{ONE} TAGGER_FILE BATCH_SIZE is the benchmark's own process (got "
                            f"{' '.join(args) or 'nothing'}); run `python -m benchmarks.inference`")
    print(json.dumps(measure(numpy_forward, Path(args[0]), test_tokens(), int(args[1]))))


if __name__ == "__main__":
    if sys.argv[1:2] == [ONE]:
        measure_alone(sys.argv[2:])
    else:
        main()

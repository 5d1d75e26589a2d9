"""Inference benchmark of the trained taggers -> reports/inference.json.

    python -m benchmarks.inference            # after `dvc repro` (it reads models/ and data/raw)

For each tagger of params.yaml's `models` (its first seed), side by side in one process: the
Keras graph (`keras.saving.load_model`, `predict_on_batch`) and the NumPy forward pass that
`Tagger.load` uses (pipeline/model/forward.py):
- loading time;
- batched throughput on the test split (batches of evaluate.batch_size sentences): the first pass,
  which encodes every token it has not seen, and a second pass, which finds them all known;
- latency of one sentence: each of the first LATENCY_SENTENCES test sentences tagged alone, in
  order, by a freshly loaded tagger (its first words are new to it, later ones mostly known);
- whether both give the same tags on the whole test split.
Each figure is measured ROUNDS times, the two paths alternating, and the median reported, with
the machine; compare the two paths as ratios within one run.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import pipeline  # noqa: F401  (first: TensorFlow is then imported without its start-up lines)
from pipeline.errors import PipelineError, exits_cleanly
from pipeline.files import write_json_atomic
from pipeline.layout import seed_folder
from pipeline.machine import describe_machine
from pipeline.model.trained import TAGGER_FILE

REPORT = Path("reports/inference.json")
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
    passes, tags = [], None
    for _ in range(2):
        started = time.perf_counter()
        tags = tagger.tag_tokens(test, batch_size)
        passes.append(time.perf_counter() - started)
    latencies_ms = np.array(latencies[20:]) * 1000  # the Keras graph traces itself on its first calls
    return {"load_seconds": load_seconds, "first_pass_sentences_per_second": len(test) / passes[0],
            "second_pass_sentences_per_second": len(test) / passes[1],
            "latency_ms_p50": float(np.percentile(latencies_ms, 50)),
            "latency_ms_p95": float(np.percentile(latencies_ms, 95)), "tags": tags}


def median_of(rounds: list[dict]) -> dict:
    return {key: round(statistics.median(r[key] for r in rounds), 2) for key in rounds[0] if key != "tags"}


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=positive, default=ROUNDS, help="measurements per figure (median reported)")
    return parser


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from pipeline.data.corpus import read_split
    from pipeline.params import load_params
    params = load_params()
    test = [s.tokens for s in read_split("test")]
    results = {}
    for name in params.models:
        tagger_file = seed_folder(name, params.train.seeds[0]) / TAGGER_FILE
        if not tagger_file.is_file():
            raise PipelineError(f"{tagger_file}: no trained tagger; run `dvc repro` first")
        rounds = {"keras": [], "numpy": []}
        for _ in range(args.rounds):
            for path, load in (("keras", keras_graph), ("numpy", numpy_forward)):
                rounds[path].append(measure(load, tagger_file, test, params.evaluate.batch_size))
        same = rounds["keras"][0]["tags"] == rounds["numpy"][0]["tags"]
        keras_row, numpy_row = median_of(rounds["keras"]), median_of(rounds["numpy"])
        results[name] = {"tagger": str(tagger_file), "keras_graph": keras_row, "numpy_forward": numpy_row,
                         "same_tags_on_test": same,
                         "speedup": {key: round(numpy_row[key] / keras_row[key], 2) if "per_second" in key
                                     else round(keras_row[key] / numpy_row[key], 2) for key in keras_row}}
        print(f"{name}: numpy forward {numpy_row['second_pass_sentences_per_second']:.0f} sentences/s "
              f"(first pass {numpy_row['first_pass_sentences_per_second']:.0f}), p50 {numpy_row['latency_ms_p50']:.2f} "
              f"ms; keras graph {keras_row['second_pass_sentences_per_second']:.0f} sentences/s, p50 "
              f"{keras_row['latency_ms_p50']:.2f} ms; same tags: {same}")
    write_json_atomic(REPORT, {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": describe_machine(),
                               "command": "python -m benchmarks.inference",
                               "test_sentences": len(test), "batch_size": params.evaluate.batch_size,
                               "rounds": args.rounds, "models": results})


if __name__ == "__main__":
    main()

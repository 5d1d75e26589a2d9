"""Speed benchmark on the real CoNLL-2003 data -> reports/benchmark.json.

    python -m benchmarks.speed                    # after `dvc repro` (it reads data/raw and data/vocab)
    python -m benchmarks.speed --revision HEAD~3  # also that git revision, side by side: speed-up ratios
    python -m benchmarks.speed --profile          # also where a training step's time goes, per layer
    python -m benchmarks.speed --repro            # also times a full default `dvc repro` in a fresh clone
    python -m benchmarks.speed --repro-only CLONE --revision REV  # only full repros: REV's, then this commit's

`--revision` checks the revision out in a temporary git worktree (its data/ linked to this one's)
and measures its pipeline code with this benchmark's method, each run in its own process,
alternating working tree and revision so that a drift of the machine's speed hits both alike.
The measurement finds the pipeline's pieces in today's layout or in the flat pipeline/ of older
revisions (PIECES), so any revision from a84e99e on can be measured.

For each tagger of params.yaml's `models` (and the char-encoder taggers at larger batches, and
the book chapter's model as a reference point) it measures, each in its own process so that peak memory is its own:
training throughput (steady-state epochs, the first one, which traces the graph, reported apart),
batched inference throughput and single-sentence latency of the saved model.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import yaml

from pipeline.errors import PipelineError, exits_cleanly

# TensorFlow and Keras are imported inside the functions that measure, which run in the child
# processes (--one): this process only starts those, times repros and writes the report, and
# its --help answers without TensorFlow's 6-7 s import

# What a measurement calls, and where each piece lives: today's layout first, then the flat
# pipeline/ of earlier revisions. `--revision` measures an older tree with its own code, so a
# measurement imports through here, never by today's module names alone.
PIECES = {
    "read_split": ("pipeline.data.corpus", "pipeline.corpus"),
    "load_vocabulary": ("pipeline.data.vocabulary", "pipeline.vocabulary"),
    "load_params": ("pipeline.params",),
    "build_encoder": ("pipeline.model.network", "pipeline.model"),
    "build_trainable": ("pipeline.model.network", "pipeline.model"),
    "pad_batch": ("pipeline.model.network", "pipeline.model"),
    "make_dataset": ("pipeline.training.batches", "pipeline.batches"),
    "Tagger": ("pipeline.model.tagger", "pipeline.tagger"),
}
FIRST_MEASURABLE = "a84e99e"  # the first revision with these pieces (models as params, build_trainable)


def graph_tagger(keras_tagger):
    """The revision's Tagger tagging through `keras_tagger`'s graph: `Tagger.of_graph` since taggers
    load without Keras, the constructor before."""
    tagger = piece("Tagger")
    return tagger.of_graph(keras_tagger) if hasattr(tagger, "of_graph") else tagger(keras_tagger)


def piece(name: str):
    """`name` from the pipeline code on the import path, wherever that revision keeps it."""
    for module in PIECES[name]:
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ModuleNotFoundError:
            continue
        if found is not None:
            return found
    raise PipelineError(f"this revision's pipeline has no {name} (looked in {', '.join(PIECES[name])}); "
                        f"--revision measures revisions from {FIRST_MEASURABLE} on")

BOOK = "book"  # the book chapter's configuration: sentences padded to 40, SimpleRNN 64, softmax
BOOK_LENGTH, BOOK_EMBEDDING, BOOK_UNITS = 40, 128, 64
LATENCY_SENTENCES = 300


def epoch_timer():
    """A Keras callback that records each epoch's wall time in its `seconds`."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    return EpochTimer()


def book_model(n_words: int, n_tags: int):
    """Embedding -> SimpleRNN(64) -> per-token softmax over sentences padded/truncated to 40 ids."""
    import keras
    from keras import layers
    ids = keras.Input(shape=(BOOK_LENGTH,), dtype="int64", name="word_ids")
    x = layers.Embedding(n_words, BOOK_EMBEDDING, mask_zero=True)(ids)
    x = layers.SimpleRNN(BOOK_UNITS, return_sequences=True)(x)
    model = keras.Model(ids, layers.Dense(n_tags, activation="softmax")(x))
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=-1))
    return model


def padded_ids(sentences, encoder, tag_ids=None):
    """The book's input: every sentence cut or padded to 40 ids (labels -1 on padding)."""
    tokens = piece("pad_batch")([s.tokens[:BOOK_LENGTH] + [""] * (BOOK_LENGTH - len(s.tokens)) for s in sentences])
    ids = encoder(tokens)["word_ids"].numpy()
    if tag_ids is None:
        return ids
    labels = np.full(ids.shape, -1)
    for row, s in enumerate(sentences):
        tags = [tag_ids[tag] for tag in s.tags[:BOOK_LENGTH]]
        labels[row, : len(tags)] = tags
    return ids, labels


def measure(name: str, batch_size: int, epochs: int, profile: bool = False) -> dict:
    """Train `name` for `epochs` epochs, save and reload it, time inference; one process per call."""
    import keras
    import tensorflow as tf
    load_params, load_vocabulary, read_split = piece("load_params"), piece("load_vocabulary"), piece("read_split")
    build_encoder, build_trainable, pad_batch = piece("build_encoder"), piece("build_trainable"), piece("pad_batch")
    params = load_params()
    vocabulary = load_vocabulary(params.model.word_vectors, params.model.word_dim)
    train, test = read_split("train"), read_split("test")
    keras.utils.set_random_seed(0)
    timer = epoch_timer()
    if name == BOOK:
        encoder = build_encoder(vocabulary.words, None, params.vocab.lowercase, params.char_vocab.max_word_length)
        model = book_model(len(vocabulary.words) + 2, len(vocabulary.tags))
        ids, labels = padded_ids(train, encoder, {tag: i for i, tag in enumerate(vocabulary.tags)})
        batches = tf.data.Dataset.from_tensor_slices((ids, labels)).shuffle(len(ids), seed=0).batch(batch_size)
        model.fit(batches, epochs=epochs, callbacks=[timer], verbose=0)
        saved = model
        test_inputs = padded_ids(test, encoder)
    else:
        encoder, trainer, saved = build_trainable(params.tagger(name), params.train, vocabulary, params.vocab.lowercase,
                                                  params.char_vocab.max_word_length)
        batches = piece("make_dataset")(train, encoder, vocabulary.tags, batch_size, shuffle_seed=0)
        trainer.fit(batches, epochs=epochs, callbacks=[timer], verbose=0)
    step_profile = profile_steps(trainer, batches) if profile and name != BOOK else None
    with tempfile.TemporaryDirectory() as folder:
        saved.save(Path(folder) / "model.keras")
        loaded = keras.saving.load_model(Path(folder) / "model.keras")

    def tag_all():
        if name == BOOK:
            return loaded.predict(test_inputs, batch_size=params.evaluate.batch_size, verbose=0)
        return graph_tagger(loaded).tag_tokens([s.tokens for s in test], params.evaluate.batch_size)

    tag_all()  # warm-up: traces the graph for the batch shapes
    started = time.perf_counter()
    tag_all()
    inference_seconds = time.perf_counter() - started

    singles = [s.tokens for s in test[:LATENCY_SENTENCES]]
    latencies = []
    for tokens in singles:
        batch = test_inputs[:1] if name == BOOK else pad_batch([tokens])
        started = time.perf_counter()
        loaded.predict_on_batch(batch)
        latencies.append(time.perf_counter() - started)
    latencies = np.array(latencies[20:]) * 1000  # the first calls trace the graph

    steady = timer.seconds[1:] or timer.seconds
    epoch_seconds = float(np.mean(steady))
    train_tokens = sum(min(len(s.tokens), BOOK_LENGTH) if name == BOOK else len(s.tokens) for s in train)
    test_sentences = len(test)
    return {
        "model": name, "batch_size": batch_size, "epochs": epochs,
        "first_epoch_seconds": round(timer.seconds[0], 2), "epoch_seconds": round(epoch_seconds, 2),
        "train_sentences_per_second": round(len(train) / epoch_seconds),
        "train_tokens_per_second": round(train_tokens / epoch_seconds),
        "inference_sentences_per_second": round(test_sentences / inference_seconds),
        "inference_tokens_per_second": round(sum(len(s.tokens) for s in test) / inference_seconds),
        "inference_batch_size": params.evaluate.batch_size,
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 2),
        "peak_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "truncated_train_tokens": sum(max(0, len(s.tokens) - BOOK_LENGTH) for s in train) if name == BOOK else 0,
        **({"step_profile_ms": step_profile} if step_profile else {}),
    }


PROFILED_STEPS = 40


def layer_of(operation: str, kind: str) -> str:
    """The part of the tagger an op belongs to, from its name scope (the same names in every revision)."""
    if kind == "Dataset" or operation.startswith("token_encoder"):
        return "input pipeline (tf.data, token encoder)"
    if any(name in operation.lower() for name in ("adam", "sgd")):
        return "optimizer"
    if "compile_loss/" in operation:  # the loss: the CRF's sequence likelihood, or cross-entropy
        return "loss (crf)" if "crf" in operation else "loss"
    found = re.search(r"trainer(?:_\d+)?/([A-Za-z_]+?)(?:_\d+)?/", operation)
    return found.group(1) if found else "other"


def profile_steps(trainer, batches) -> dict:
    """Milliseconds per training step by layer (forward and backward), from the TensorFlow profiler's
    op statistics over PROFILED_STEPS steps; the ops' self times, summed over threads."""
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as profiler_tools
    with tempfile.TemporaryDirectory() as folder:
        tf.profiler.experimental.start(folder)
        trainer.fit(batches.take(PROFILED_STEPS), epochs=1, verbose=0)
        tf.profiler.experimental.stop()
        trace = next(Path(folder).rglob("*.xplane.pb"))
        table = json.loads(profiler_tools.xspace_to_tools_data([str(trace)], "framework_op_stats", {})[0])[0]
    columns = [column["id"] for column in table["cols"]]
    by_layer: dict[str, float] = {}
    for row in table["rows"]:
        cells = dict(zip(columns, (cell.get("v") for cell in row["c"])))
        if cells["type"] != "IDLE":
            layer = layer_of(str(cells["operation"]), cells["type"])
            by_layer[layer] = by_layer.get(layer, 0.0) + cells["total_self_time"] / 1000 / PROFILED_STEPS
    return {layer: round(ms, 2) for layer, ms in sorted(by_layer.items(), key=lambda item: -item[1]) if ms >= 0.05}


def run_isolated(name: str, batch_size: int, epochs: int, code: Path = Path("."), profile: bool = False) -> dict:
    """measure() in a process of its own, on the pipeline code of the tree `code` (this benchmark's
    method either way: the file runs by path with `code` first on the import path)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one", name, "--batch-size", str(batch_size),
               "--epochs", str(epochs)] + (["--profile"] if profile else [])
    print("$", " ".join(command[1:]), f"(code: {code})", file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONPATH": str(code.resolve()), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=code, env=env)
    if done.returncode != 0:
        raise PipelineError(f"benchmark of {name} at batch {batch_size} ({code}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def commit_of(revision: str) -> str:
    """The commit `revision` names in this repository; one line naming it if none."""
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{revision}^{{commit}}"], capture_output=True, text=True)
    if commit.returncode != 0:
        raise PipelineError(f"--revision {revision}: not a commit of this repository ({commit.stderr.strip()})")
    return commit.stdout.strip()


@contextmanager
def revision_tree(revision: str):
    """A temporary git worktree of `revision`, its data/raw and data/vocab linked to this tree's."""
    commit = commit_of(revision)
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(tree), commit], check=True)
        try:
            for part in ("raw", "vocab"):
                target = tree / "data" / part
                if target.exists():
                    shutil.rmtree(target)
                target.parent.mkdir(exist_ok=True)
                target.symlink_to(Path("data", part).resolve())
            yield tree, commit
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], check=False)


def speedups(new: dict, old: dict) -> dict:
    """Ratios > 1 mean the working tree is faster."""
    return {"train": round(new["train_sentences_per_second"] / old["train_sentences_per_second"], 2),
            "inference": round(new["inference_sentences_per_second"] / old["inference_sentences_per_second"], 2),
            "latency_p50": round(old["latency_ms_p50"] / new["latency_ms_p50"], 2),
            "first_epoch": round(old["first_epoch_seconds"] / new["first_epoch_seconds"], 2)}


def check_new_folder(clone: Path) -> None:
    if clone.exists():
        raise PipelineError(f"{clone} already exists: name a new folder for the fresh clone")


def time_full_repro(source: str, clone: Path | None = None, revision: str | None = None) -> dict:
    """`dvc repro` of the committed project (or of `revision`) in a fresh clone (at `clone`, kept,
    with its own MLflow store; else a temporary one), data from `source` (data.source)."""
    with tempfile.TemporaryDirectory() as folder:
        clone = clone or Path(folder) / "clone"
        check_new_folder(clone)
        subprocess.run(["git", "clone", "--quiet", ".", str(clone)], check=True)
        if revision:
            subprocess.run(["git", "checkout", "--quiet", revision], cwd=clone, check=True)
        params = yaml.safe_load((clone / "params.yaml").read_text())
        params["data"]["source"] = source if source == "default" else str(Path(source).resolve())
        (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
        started = time.perf_counter()
        repro = subprocess.run(["dvc", "repro", "--quiet"], cwd=clone, env=env)
        if repro.returncode:  # dvc has printed why
            raise PipelineError(f"dvc repro failed in {clone} (exit status {repro.returncode}), see above; "
                                f"offline? rerun with --source FOLDER, a local copy of the data, and a new clone folder")
        seconds = round(time.perf_counter() - started)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True)
        return {"seconds": seconds, "commit": commit.stdout.strip(), "seeds": params["train"]["seeds"],
                "recipe": {key: params["train"].get(key) for key in ("batch_size", "learning_rate", "lr_schedule",
                                                                     "epochs", "patience")},
                "command": "dvc repro (fresh clone, default params.yaml, data from a local mirror)"}


def machine() -> dict:
    from pipeline.machine import describe_machine
    return {**describe_machine(), "gpu": "none", "tensorflow": tensorflow_version()}


def tensorflow_version() -> str | None:
    """The installed TensorFlow's version, read from its package metadata: this process (which only
    starts the measurements and times repros) never imports TensorFlow."""
    for distribution in ("tensorflow-cpu", "tensorflow"):  # requirements.txt / requirements-gpu.txt
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def batch_sizes(text: str) -> list[int]:
    """--large-batches: comma-separated positive integers."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated batch sizes, got {text!r}") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"batch sizes must be at least 1, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per model (the first is warm-up)")
    parser.add_argument("--large-batches", type=batch_sizes, default="64,128",
                        help="taggers with a char encoder also at these batch sizes (comma-separated; empty: none)")
    parser.add_argument("--models", type=lambda text: [name for name in text.split(",") if name],
                        help="comma-separated taggers of params.yaml's models (default: all)")
    parser.add_argument("--repro", action="store_true", help="also time a full dvc repro in a fresh clone")
    parser.add_argument("--repro-only", type=Path, metavar="CLONE",
                        help="only time a full dvc repro, in a fresh clone made at CLONE and kept (its models, "
                             "reports and MLflow store) -> reports/repro_time.json")
    parser.add_argument("--source", default=os.environ.get("NER_SHARED_DATA", "default"),
                        help="data.source for --repro: a local data mirror (default: $NER_SHARED_DATA, "
                             "else the public URLs)")
    parser.add_argument("--revision", help="also benchmark this git revision (a temporary worktree), for speed-ups; "
                                           "with --repro-only, time its full dvc repro first, in a fresh clone at "
                                           "CLONE-<commit>")
    parser.add_argument("--profile", action="store_true",
                        help="also profile training steps: milliseconds per step by layer (TensorFlow profiler)")
    parser.add_argument("--no-book", action="store_true", help="leave out the book chapter's model")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    return parser


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.batch_size, args.epochs, args.profile)))
        return

    # the driver runs in this working tree: today's modules
    from pipeline.files import write_json_atomic
    from pipeline.layout import BENCHMARK_FILE, REPORTS_DIR
    if args.repro_only:
        clone = args.repro_only.resolve()
        report = {"command": "python -m benchmarks.speed " + " ".join(argv if argv is not None else sys.argv[1:]),
                  "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine()}
        if args.revision:  # the older code first, then this commit's, one after the other on this machine
            revision = commit_of(args.revision)
            older = clone.with_name(f"{clone.name}-{revision[:7]}")
            check_new_folder(clone)  # before the older repro, not after it
            report["revision"] = {"full_repro": time_full_repro(args.source, older, revision)}
        report["full_repro"] = time_full_repro(args.source, clone)
        if args.revision:
            report["speedup_over_revision"] = round(report["revision"]["full_repro"]["seconds"]
                                                    / report["full_repro"]["seconds"], 2)
        write_json_atomic(REPORTS_DIR / "repro_time.json", report)
        print(json.dumps(report, indent=2))
        return
    from pipeline.params import load_params
    params = load_params()
    models = args.models or list(params.models)
    if unknown := [name for name in models if name not in params.models]:
        parser.error(f"--models: {', '.join(unknown)} not in params.yaml's models ({', '.join(params.models)})")
    batch = params.train.batch_size
    with_chars = [name for name in models if params.tagger(name).char_encoder != "none"]
    runs = [(name, batch) for name in models] + ([] if args.no_book else [(BOOK, batch)])
    runs += [(name, size) for name in with_chars for size in args.large_batches]
    with revision_tree(args.revision) if args.revision else nullcontext((None, None)) as (tree, commit):
        results, old_results = [], []
        for name, size in runs:
            results.append(run_isolated(name, size, args.epochs, profile=args.profile))
            if tree is not None and name != BOOK:  # the book's model is not the project's code
                old_results.append(run_isolated(name, size, args.epochs, tree, args.profile))
    by_key = {(r["model"], r["batch_size"]): r for r in results}
    book = by_key.get((BOOK, batch))
    report = {
        "command": "python -m benchmarks.speed " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "settings": {"models": {name: params.tagger(name).model_dump() for name in models},
                     "batch_size": batch,
                     "book": {"padded_length": BOOK_LENGTH, "embedding": BOOK_EMBEDDING, "cell": "SimpleRNN",
                              "units": BOOK_UNITS, "decoder": "softmax", "bidirectional": False}},
        "results": results,
    }
    if book:
        report["ratios_to_book"] = {name: {key: round(by_key[name, batch][key] / book[key], 2) for key in
                                           ["train_sentences_per_second", "inference_sentences_per_second",
                                            "latency_ms_p50", "peak_memory_mib"]} for name in models}
    if old_results:
        report["revision"] = {"revision": args.revision, "commit": commit, "results": old_results}
        report["speedups_over_revision"] = {f"{old['model']}@{old['batch_size']}":
                                            speedups(by_key[old["model"], old["batch_size"]], old)
                                            for old in old_results}
    if args.repro:
        report["full_repro"] = time_full_repro(args.source)
    write_json_atomic(BENCHMARK_FILE, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""What the frozen word table's float16 costs -> reports/float16.json.

    python -m benchmarks.float16

Taggers keep the word vectors that training never sees frozen (pipeline/model/layers.py,
WordEmbedding). They are stored in float16; this measures computing with them in float16 (a
float16 table, each looked-up row cast to float32: the layout before) against float32 (the table
cast once, on loading: the layout now), for a char_cnn tagger of the default's shape (the
workspace's vocabulary sizes when data/vocab exists, else CoNLL-2003's with all of GloVe), each
with TensorFlow's oneDNN kernels on and off (TF_ENABLE_ONEDNN_OPTS=0: TensorFlow's Eigen kernels,
what a CPU whose oneDNN lacks float16 falls back to). Each (layout, kernels) runs in its own
process, the four alternating twice; it reports milliseconds per training step (batch 128), per
inference batch (256 sentences) and per one-sentence call, and whether TensorFlow printed its
`DT_HALF` notice.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import pipeline  # noqa: F401  (first: TensorFlow is then imported without its start-up lines)
from pipeline.errors import exits_cleanly

SIZES = {"n_words": 400_002, "trained_rows": 20_904, "n_chars": 86, "n_tags": 9}  # CoNLL-2003, all of GloVe
LENGTH = 14  # CoNLL-2003's mean train sentence length, in tokens
STEPS = 60
SETTINGS = [(layout, onednn) for onednn in ("1", "0") for layout in ("float16", "float32")]


def float16_layer():
    """WordEmbedding as it was: the frozen table kept and looked up in float16."""
    import tensorflow as tf

    from pipeline.model.layers import WordEmbedding

    class Float16WordEmbedding(WordEmbedding):
        def build(self, input_shape):
            self.trained = self.add_weight(shape=(self.trained_rows, self.dim), name="embeddings")
            self.frozen = self.add_weight(shape=(self.frozen_count, self.dim), name="frozen_embeddings",
                                          initializer="zeros", dtype="float16", trainable=False)

        def call(self, word_ids):
            is_frozen = word_ids >= self.trained_rows
            trained = tf.nn.embedding_lookup(self.trained.value, tf.where(is_frozen, tf.zeros_like(word_ids), word_ids))
            frozen = tf.cast(tf.nn.embedding_lookup(self.frozen.value, tf.maximum(word_ids - self.trained_rows, 0)),
                             trained.dtype)
            return tf.where(is_frozen[..., None], frozen, trained)

    return Float16WordEmbedding


def sizes() -> dict:
    """The workspace's vocabulary sizes where it has one (after dvc repro), else CoNLL-2003's."""
    try:
        from pipeline.data.corpus import read_split
        from pipeline.data.vocabulary import load_vocabulary, trained_word_count
        from pipeline.params import load_params
        params = load_params()
        vocabulary = load_vocabulary(params.model.word_vectors, params.model.word_dim)
        trained = trained_word_count(vocabulary.words, read_split("train"), params.vocab.lowercase)
        return {"n_words": len(vocabulary.words) + 2, "trained_rows": trained + 2, "n_chars": len(vocabulary.chars) + 2,
                "n_tags": len(vocabulary.tags)}
    except Exception:  # no workspace data: the published sizes
        return SIZES


def measure(layout: str, shape: dict) -> dict:
    """Milliseconds per training step, inference batch and one-sentence call, in this process."""
    import keras
    import tensorflow as tf

    from pipeline.model import network
    from pipeline.params import load_params
    if layout == "float16":
        network.WordEmbedding = float16_layer()
    keras.utils.set_random_seed(0)
    spec = load_params().tagger("char_cnn")
    model = network.build_network(shape["n_words"], shape["n_chars"], shape["n_tags"], spec,
                                  trained_words=shape["trained_rows"] - 2)
    rng = np.random.default_rng(0)

    def batch(size: int, frozen_share: float) -> dict:
        """Ids as a batch of real text gives them: training never sees a frozen word; tagging new
        text does (about 5% of CoNLL-2003's test tokens)."""
        words = rng.integers(2, shape["trained_rows"], (size, LENGTH))
        frozen = rng.random((size, LENGTH)) < frozen_share
        words[frozen] = rng.integers(shape["trained_rows"], shape["n_words"], frozen.sum())
        return {"word_ids": words, "casing_ids": rng.integers(1, 8, (size, LENGTH)),
                "char_ids": rng.integers(2, shape["n_chars"], (size, LENGTH, 8))}

    trainer = keras.Model(model.inputs, model.outputs)
    trainer.compile(optimizer="adam", loss=network.tagging_loss(model, spec))
    train_batch, labels = batch(128, 0.0), rng.integers(0, shape["n_tags"], (128, LENGTH))
    test_batch, one = batch(256, 0.05), batch(1, 0.05)
    predict = tf.function(lambda inputs: model(inputs, training=False))

    def per_call(call, repeats: int) -> float:
        call()  # traces
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        return round((time.perf_counter() - started) / repeats * 1000, 3)

    return {"train_step_ms": per_call(lambda: trainer.train_on_batch(train_batch, labels), STEPS),
            "inference_batch_ms": per_call(lambda: predict(test_batch), STEPS),
            "one_sentence_ms": per_call(lambda: predict(one), 5 * STEPS)}


def run_isolated(layout: str, onednn: str, shape: dict) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks.float16", "--one", layout, "--shape", json.dumps(shape)],
                          capture_output=True, text=True, env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn})
    if done.returncode:
        raise SystemExit(done.stderr.strip().splitlines()[-1])
    return {"layout": layout, "onednn": onednn == "1", **json.loads(done.stdout.strip().splitlines()[-1]),
            "dt_half_notice": "DT_HALF" in done.stderr}


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.float16", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="times each setting is measured, alternating")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, json.loads(args.shape))))
        return
    from pipeline.files import write_json_atomic
    from pipeline.machine import describe_machine
    shape = sizes()
    runs = [run_isolated(layout, onednn, shape) for _ in range(args.rounds) for layout, onednn in SETTINGS]
    results = []
    for layout, onednn in SETTINGS:
        mine = [run for run in runs if run["layout"] == layout and run["onednn"] == (onednn == "1")]
        results.append({**{key: mine[0][key] for key in ("layout", "onednn")},
                        **{key: round(float(np.median([run[key] for run in mine])), 3)
                           for key in ("train_step_ms", "inference_batch_ms", "one_sentence_ms")},
                        "dt_half_notice": any(run["dt_half_notice"] for run in mine)})
    ratios = {("onednn" if onednn == "1" else "eigen"): {
        key: round(next(r[key] for r in results if r["layout"] == "float16" and r["onednn"] == (onednn == "1"))
                   / next(r[key] for r in results if r["layout"] == "float32" and r["onednn"] == (onednn == "1")), 3)
        for key in ("train_step_ms", "inference_batch_ms", "one_sentence_ms")} for onednn in ("1", "0")}
    report = {"command": "python -m benchmarks.float16 " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d"), "machine": describe_machine(), "shape": shape,
              "results": results, "float16_over_float32": ratios, "runs": runs}
    write_json_atomic("reports/float16.json", report)
    print(json.dumps({"results": results, "float16_over_float32": ratios}, indent=2))


if __name__ == "__main__":
    main()

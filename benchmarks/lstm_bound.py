"""What bounds a training step's BiLSTM: the word BiLSTM's forward and backward pass (FusedBiLSTM,
one TensorFlow thread, as each training of `dvc repro` runs) against the same matrix products
alone (`tf.matmul`, oneDNN), at the default recipe's shapes. If the layer takes little more than
its products, no other LSTM implementation can gain much on this CPU: only less arithmetic can.
Also timed: the other layout of the same products (the input projection of all steps as one
large product, only the recurrent product per step), and the layer itself written in TensorFlow
ops, unrolled over the steps with that layout (what Keras' loop, a scan or XLA build from).

    python -m benchmarks.lstm_bound       # about a minute

The shapes: --batch sentences (params.yaml's train.batch_size) of --steps tokens (20: the mean
longest sentence of a bucketed batch of 128 in CoNLL-2003's train set), char_cnn's input width
(word vector, casing and char CNN features) and model.units. Writes reports/lstm_bound.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from pipeline.errors import exits_cleanly
from pipeline.files import write_json_atomic
from pipeline.layout import REPORTS_DIR
from pipeline.machine import describe_machine
from pipeline.params import load_params
from pipeline.stages.arguments import positive_int

REPORT_FILE = REPORTS_DIR / "lstm_bound.json"
# TensorFlow (and the model code, which imports it) is imported where the timing starts, after the
# arguments are read: `--help` or a usage error answers at once, not after TensorFlow's 6 s import


def median_ms(function, repeats: int) -> float:
    import tensorflow as tf
    function()  # traced and warmed up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for tensor in tf.nest.flatten(function()):
            tensor.numpy()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


def unrolled_direction(x, kernel, recurrent_kernel, bias, backward: bool):
    """One LSTM direction over every step of `x` (batch, steps, width), Keras' gates (i, f, c, o):
    the input projection of all steps in one product, then a product and the gates per step."""
    import tensorflow as tf
    batch, steps = x.shape[0], x.shape[1]
    projected = tf.reshape(tf.matmul(tf.reshape(x, [batch * steps, -1]), kernel) + bias, [batch, steps, -1])
    h = c = tf.zeros([batch, recurrent_kernel.shape[0]])
    outputs = []
    for t in reversed(range(steps)) if backward else range(steps):
        i, f, g, o = tf.split(projected[:, t] + tf.matmul(h, recurrent_kernel), 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        outputs.append(h)
    return tf.stack(outputs[::-1] if backward else outputs, axis=1)


def timings(batch: int, steps: int, width: int, units: int, threads: int, repeats: int) -> dict:
    import tensorflow as tf

    from pipeline.model.bilstm import FusedBiLSTM
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    layer = FusedBiLSTM(units)
    x = tf.random.normal([batch, steps, width])
    layer(x)

    @tf.function
    def layer_forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))
        return tape.gradient(loss, [x, *layer.trainable_weights])

    kernel = tf.random.normal([width + units, 4 * units])
    inputs, gates = tf.random.normal([steps, batch, width + units]), tf.random.normal([steps, batch, 4 * units])

    @tf.function
    def products_per_step():  # per step and direction: the gates, the inputs' gradient, the kernel's gradient
        return [product for t in range(steps) for _ in range(2) for product in (
            tf.matmul(inputs[t], kernel), tf.matmul(gates[t], kernel, transpose_b=True),
            tf.matmul(inputs[t], gates[t], transpose_a=True))]

    @tf.function
    def projection_once_then_recurrent():  # the same products, the input part of all steps at once
        flat_x, flat_gates = tf.reshape(inputs[:, :, :width], [-1, width]), tf.reshape(gates, [-1, 4 * units])
        once = [product for _ in range(2) for product in (
            tf.matmul(flat_x, kernel[:width]), tf.matmul(flat_gates, kernel[:width], transpose_b=True),
            tf.matmul(flat_x, flat_gates, transpose_a=True))]
        return once + [product for t in range(steps) for _ in range(2) for product in (
            tf.matmul(inputs[t, :, width:], kernel[width:]), tf.matmul(gates[t], kernel[width:], transpose_b=True),
            tf.matmul(inputs[t, :, width:], gates[t], transpose_a=True))]

    @tf.function
    def ops_unrolled_forward_backward():  # the layer written in TensorFlow ops, unrolled over the steps
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = [unrolled_direction(x, *layer.weights_by_direction[direction], backward=direction == "backward")
                       for direction in ("forward", "backward")]
            loss = tf.reduce_sum(tf.square(tf.concat(outputs, -1)))
        return tape.gradient(loss, [x, *layer.trainable_weights])

    flop = 3 * 2 * (2 * batch * (width + units) * 4 * units) * steps  # 3 products, 2 directions, per step
    result = {"layer_forward_backward_ms": median_ms(layer_forward_backward, repeats),
              "layer_forward_ms": median_ms(tf.function(lambda: layer(x)), repeats),
              "products_per_step_ms": median_ms(products_per_step, repeats),
              "projection_once_then_recurrent_ms": median_ms(projection_once_then_recurrent, repeats),
              "ops_unrolled_forward_backward_ms": median_ms(ops_unrolled_forward_backward, repeats),
              "gflop": round(flop / 1e9, 3)}
    result["products_gflop_per_s"] = round(flop / 1e6 / result["products_per_step_ms"], 1)
    result["layer_over_products"] = round(result["layer_forward_backward_ms"] / result["products_per_step_ms"], 2)
    return result


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    params = load_params()
    spec = params.tagger("char_cnn") if "char_cnn" in params.models else params.model
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lstm_bound", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=positive_int, default=params.train.batch_size, help="sentences per batch")
    parser.add_argument("--steps", type=positive_int, default=20, help="tokens per sentence, padding included")
    parser.add_argument("--repeats", type=positive_int, default=30, help="timed calls of each (the median is kept)")
    args = parser.parse_args(argv)
    from pipeline.model.layers import CASING_DIM
    width = spec.word_dim + (CASING_DIM if spec.casing else 0) + spec.char_filters
    shapes = {"batch": args.batch, "steps": args.steps, "input_width": width, "units": spec.units,
              "threads": params.train.threads}
    result = timings(args.batch, args.steps, width, spec.units, params.train.threads, args.repeats)
    print(result, flush=True)
    report = {"command": " ".join(["python -m benchmarks.lstm_bound", *(argv if argv is not None else sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": describe_machine(),
              "shapes": shapes, **result}
    write_json_atomic(Path(REPORT_FILE), report)


if __name__ == "__main__":
    main()

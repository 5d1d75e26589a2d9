import keras
import numpy as np
import tensorflow as tf

from pipeline.model.optimizers import LazyAdam, decayed_learning_rate


def train(optimizer, ids_per_step, dense):
    """A few steps on an embedding table; returns the table."""
    table = keras.Variable(np.linspace(-1, 1, 24, dtype="float32").reshape(6, 4))
    for ids in ids_per_step:
        with tf.GradientTape() as tape:
            rows = tf.gather(table.value, ids)
            loss = tf.reduce_sum(tf.square(rows - 0.3) * tf.range(1.0, 5.0))
        gradient = tape.gradient(loss, table.value)  # tf.IndexedSlices, as for an Embedding layer
        optimizer.apply([tf.convert_to_tensor(gradient) if dense else gradient], [table])
    return table.numpy()


def test_dense_gradients_get_keras_adams_update():
    steps = [[0, 1, 1], [2, 0], [5]]
    expected = train(keras.optimizers.Adam(0.1), steps, dense=True)
    np.testing.assert_allclose(train(LazyAdam(0.1), steps, dense=True), expected, rtol=1e-6)


def test_sparse_gradients_update_only_the_rows_used_like_adam_on_them():
    steps = [[0, 1, 1], [0, 1], [1, 0, 0]]  # rows 0 and 1 in every step: Adam's update exactly
    lazy = train(LazyAdam(0.1), steps, dense=False)
    dense = train(keras.optimizers.Adam(0.1), steps, dense=True)
    np.testing.assert_allclose(lazy[:2], dense[:2], rtol=1e-5)
    np.testing.assert_array_equal(lazy[2:], np.linspace(-1, 1, 24, dtype="float32").reshape(6, 4)[2:])
    # a row left out of a step keeps its value there (dense Adam moves it on its momentum)
    skipped = train(LazyAdam(0.1), [[0, 2], [2], [2]], dense=False)
    first = train(LazyAdam(0.1), [[0, 2]], dense=False)
    np.testing.assert_array_equal(skipped[0], first[0])


def test_the_learning_rate_of_each_epoch_follows_the_schedule():
    from pipeline.params import load_params
    from tests.conftest import REPO_ROOT

    def train_params(**changes):
        return load_params(REPO_ROOT / "params.yaml", {f"train.{key}": value for key, value in changes.items()}).train
    inverse_time = train_params(learning_rate=0.01, lr_decay=0.5)
    assert [decayed_learning_rate(inverse_time, t) for t in range(3)] == [0.01, 0.01 / 1.5, 0.01 / 2]
    linear = train_params(learning_rate=0.01, lr_schedule="linear", epochs=4)
    np.testing.assert_allclose([decayed_learning_rate(linear, t) for t in range(4)], [0.01, 0.0075, 0.005, 0.0025])

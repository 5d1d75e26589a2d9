"""The fused bidirectional LSTM computes what Keras' Bidirectional(LSTM) computes: the same
outputs and the same gradients for the same weights, on right-padded batches."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.model.bilstm import FusedBiLSTM

BATCH, TIME, FEATURES, UNITS = 5, 7, 6, 4
LENGTHS = [7, 3, 1, 5, 0]  # a full row, short rows, a one-token row and an all-padding row


# an odd batch (5) with an odd input size takes BlockLSTM's slow path (and a warning per call)
# unless the layer pads the input size to an even one: both sizes must give Keras' numbers
@pytest.mark.parametrize("features", [FEATURES, FEATURES + 1])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_fused_bilstm_equals_keras_bidirectional_lstm(return_sequences, features):
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(BATCH, TIME, features)).astype("float32") * 3)
    mask = tf.constant(np.arange(TIME)[None] < np.array(LENGTHS)[:, None])
    reference = keras.layers.Bidirectional(keras.layers.LSTM(UNITS, return_sequences=return_sequences))
    fused = FusedBiLSTM(UNITS, return_sequences=return_sequences)
    reference.build((None, TIME, features))
    fused.build((None, TIME, features))
    # large weights drive the cell state past BlockLSTM's default clip of 3: no clipping, as in Keras
    weights = [w * 5 for w in reference.get_weights()]
    assert [w.shape for w in fused.get_weights()] == [w.shape for w in weights]
    reference.set_weights(weights)
    fused.set_weights(weights)
    position_weights = np.arange(2 * UNITS, dtype="float32")  # every output unit counts differently
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs)
        expected, actual = reference(inputs, mask=mask), fused(inputs, mask=mask)
        if return_sequences:  # padding positions: Keras repeats a state there, the fused layer gives 0
            expected = tf.where(mask[:, :, None], expected, 0.0)
        expected_loss = tf.reduce_sum(expected * position_weights)
        actual_loss = tf.reduce_sum(actual * position_weights)
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    for got, want in zip(tape.gradient(actual_loss, [inputs, *fused.trainable_weights]),
                         tape.gradient(expected_loss, [inputs, *reference.trainable_weights])):
        np.testing.assert_allclose(got, want, atol=1e-4)
    if not return_sequences:
        assert not np.asarray(actual)[LENGTHS.index(0)].any()  # an all-padding row: zero state


def test_fused_bilstm_passes_the_padding_mask_on():
    layer = FusedBiLSTM(UNITS)
    mask = tf.constant([[True, True, False]])
    assert layer.compute_mask(tf.zeros((1, 3, FEATURES)), mask) is mask
    assert FusedBiLSTM(UNITS, return_sequences=False).compute_mask(tf.zeros((1, 3, FEATURES)), mask) is None

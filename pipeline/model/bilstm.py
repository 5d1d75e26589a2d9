"""A bidirectional LSTM on TensorFlow's fused LSTM kernel (BlockLSTM): each direction runs its
whole time loop in one C++ op, with the input projection done for all time steps in one matmul,
instead of Keras' Python-built loop of a dozen small ops per step. On 2 CPU cores that is most of
a training step's time (see README, Speed).

On a GPU, Keras' own layer runs on cuDNN, which is faster still, so `bidirectional_lstm` picks
that there. The maths are Keras' `Bidirectional(LSTM(units))`: the same gates (i, f, c, o), activations,
initialisers and mask semantics (right padding; the backward direction reads each sentence from
its own last token). tests/test_bilstm.py checks equal outputs and gradients against it.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import initializers, layers


def _to_icfo(gates):
    """Keras' gate order (i, f, c, o) along the last axis -> BlockLSTM's (i, c, f, o)."""
    i, f, c, o = tf.split(gates, 4, axis=-1)
    return tf.concat([i, c, f, o], axis=-1)


def _lstm(inputs, kernel, recurrent_kernel, bias):
    """(time, batch, in) -> (time, batch, units) hidden states, zero initial state.

    BlockLSTM rather than BlockLSTMV2 (which has Keras' gate order): TensorFlow registers V1's
    gradient for V2 too, so V2's gradients come out wrong (checked against finite differences)."""
    units = recurrent_kernel.shape[0]
    if inputs.shape[-1] % 2:  # BlockLSTM takes a slow path when batch and input sizes are both odd
        inputs = tf.pad(inputs, [[0, 0], [0, 0], [0, 1]])
        kernel = tf.pad(kernel, [[0, 1], [0, 0]])
    zeros = tf.zeros(tf.stack([tf.shape(inputs)[1], units]), inputs.dtype)
    no_peephole = tf.zeros([units], inputs.dtype)
    outputs = tf.raw_ops.BlockLSTM(
        seq_len_max=tf.cast(tf.shape(inputs)[0], tf.int64), x=inputs, cs_prev=zeros, h_prev=zeros,
        w=_to_icfo(tf.concat([kernel, recurrent_kernel], axis=0)), wci=no_peephole, wcf=no_peephole,
        wco=no_peephole, b=_to_icfo(bias), forget_bias=0.0, cell_clip=-1.0, use_peephole=False)  # as Keras
    return outputs[6]  # h


@keras.saving.register_keras_serializable(package="ner")
class FusedBiLSTM(layers.Layer):
    """(batch, time, features) -> (batch, time, 2 * units) with `return_sequences`, else the final
    forward and backward states, (batch, 2 * units). Padding positions of the sequence output are 0."""

    def __init__(self, units: int, return_sequences: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.return_sequences = units, return_sequences
        self.supports_masking = True

    def build(self, input_shape):
        def bias_init(shape, dtype=None):  # Keras' unit_forget_bias: forget gate bias 1, others 0
            return tf.concat([tf.zeros([self.units]), tf.ones([self.units]), tf.zeros([2 * self.units])], 0)

        self.weights_by_direction = {}
        for direction in ("forward", "backward"):
            self.weights_by_direction[direction] = (
                self.add_weight(shape=(input_shape[-1], 4 * self.units), name=f"{direction}_kernel",
                                initializer=initializers.GlorotUniform()),
                self.add_weight(shape=(self.units, 4 * self.units), name=f"{direction}_recurrent_kernel",
                                initializer=initializers.Orthogonal()),
                self.add_weight(shape=(4 * self.units,), name=f"{direction}_bias", initializer=bias_init))

    def call(self, inputs, mask=None):
        batch, time = tf.shape(inputs)[0], tf.shape(inputs)[1]
        mask = tf.ones([batch, time], tf.bool) if mask is None else tf.cast(mask, tf.bool)
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        x = tf.transpose(inputs, [1, 0, 2])  # time major
        # the forward pass runs on into the padding too: harmless, real positions never see it
        forward = _lstm(x, *self.weights_by_direction["forward"])
        reversed_x = tf.reverse_sequence(x, lengths, seq_axis=0, batch_axis=1)
        backward_reversed = _lstm(reversed_x, *self.weights_by_direction["backward"])
        if not self.return_sequences:
            last = tf.maximum(lengths - 1, 0)
            final_forward = tf.gather(tf.transpose(forward, [1, 0, 2]), last, batch_dims=1)
            final_backward = tf.gather(tf.transpose(backward_reversed, [1, 0, 2]), last, batch_dims=1)
            has_tokens = (lengths > 0)[:, None]  # Keras: an all-padding row keeps the zero state
            return tf.where(has_tokens, tf.concat([final_forward, final_backward], -1), 0.0)
        backward = tf.reverse_sequence(backward_reversed, lengths, seq_axis=0, batch_axis=1)
        outputs = tf.transpose(tf.concat([forward, backward], -1), [1, 0, 2])
        return tf.where(mask[:, :, None], outputs, 0.0)

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (*input_shape[:2], 2 * self.units)
        return (input_shape[0], 2 * self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "return_sequences": self.return_sequences}


def bidirectional_lstm(units: int, return_sequences: bool = True, name: str | None = None) -> layers.Layer:
    """The faster of two equal layers: Keras' (cuDNN) where TensorFlow sees a GPU, else the fused one."""
    if tf.config.list_physical_devices("GPU"):
        return layers.Bidirectional(layers.LSTM(units, return_sequences=return_sequences), name=name)
    return FusedBiLSTM(units, return_sequences, name=name)

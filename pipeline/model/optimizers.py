"""The optimizers train.optimizer names, and their learning-rate schedule.

LazyAdam: Adam that updates only the embedding rows a batch uses.

Keras 3's Adam applies dense updates, so a 100k-word embedding costs a full pass over its 5M
weights (and their two moment slots) on every step: about 40% of a char_cnn training step on
2 CPU cores. TF Addons' LazyAdam did this sparse update but is archived and does not support
Keras 3, hence these few lines. Dense gradients get exactly Keras' Adam update.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="ner")
class LazyAdam(keras.optimizers.Adam):
    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        # a row may occur several times in a batch: sum its gradients first
        rows, positions = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(tf.cast(gradient.values, variable.dtype), positions, tf.shape(rows)[0])
        step = ops.cast(self.iterations + 1, variable.dtype)
        alpha = (ops.cast(learning_rate, variable.dtype) * ops.sqrt(1 - ops.power(self.beta_2, step))
                 / (1 - ops.power(self.beta_1, step)))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = tf.gather(m.value, rows) * self.beta_1 + values * (1 - self.beta_1)
        v_rows = tf.gather(v.value, rows) * self.beta_2 + tf.square(values) * (1 - self.beta_2)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


def make_optimizer(train) -> keras.optimizers.Optimizer:
    """train.optimizer: adam (LazyAdam) or sgd (with train.momentum), clipped to train.clipnorm."""
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(train.learning_rate, momentum=train.momentum, clipnorm=train.clipnorm)
    return LazyAdam(train.learning_rate, clipnorm=train.clipnorm)


def decayed_learning_rate(train, epoch: int) -> float:
    """The learning rate of epoch `epoch` (0-based). inverse_time: lr / (1 + lr_decay * epoch) (Ma &
    Hovy 2016); linear: lr * (1 - epoch / epochs), annealed to a small step by the last epoch
    (docs/speed.md: for the default recipe, 8-12 annealed epochs stay below its constant rate)."""
    if train.lr_schedule == "linear":
        return train.learning_rate * (1 - epoch / train.epochs)
    return train.learning_rate / (1 + train.lr_decay * epoch)

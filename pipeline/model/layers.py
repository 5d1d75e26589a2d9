"""The taggers' own Keras layers, registered under the package name `ner` so that saved taggers
load by name: token preprocessing (Lowercase, CharSplit, CasingIds), the char encoders (CharCNN,
CharBiLSTM; registered in CHAR_ENCODERS), the word embedding with its frozen pretrained rows,
word dropout, and the TagDecoder (class probabilities -> tag strings). Keep the registered names
(package and class name) stable: they are how a .keras file finds its layers."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from pipeline.model.bilstm import FusedBiLSTM
from pipeline.model.casing import CASINGS

PAD = ""  # padding token; also the StringLookup mask token, so it maps to id 0
CASING_DIM = len(CASINGS)


@keras.saving.register_keras_serializable(package="ner")
class Lowercase(layers.Layer):
    """Lower-cases token strings (Unicode-aware), for a lower-cased word vocabulary."""

    def call(self, tokens):
        return tf.strings.lower(tokens, encoding="utf-8")


@keras.saving.register_keras_serializable(package="ner")
class CharSplit(layers.Layer):
    """(batch, time) token strings -> (batch, time, max_word_length) character strings, PAD-padded."""

    def __init__(self, max_word_length: int, **kwargs):
        super().__init__(**kwargs)
        self.max_word_length = max_word_length

    def call(self, tokens):
        chars = tf.strings.unicode_split(tokens, "UTF-8")[:, :, : self.max_word_length]
        return chars.to_tensor(default_value=PAD, shape=[None, None, self.max_word_length])

    def get_config(self):
        return {**super().get_config(), "max_word_length": self.max_word_length}


@keras.saving.register_keras_serializable(package="ner")
class CasingIds(layers.Layer):
    """(batch, time) token strings -> casing class ids (see CASINGS), 0 for padding.

    The lower-cased word lookup loses case; this gives it back to both taggers alike."""

    def call(self, tokens):
        length = tf.strings.length(tokens, unit="UTF8_CHAR")
        digits = tf.strings.length(tf.strings.regex_replace(tokens, "[^0-9]", ""))
        tests = [tf.logical_and(digits == length, length > 0), 2 * digits > length,
                 tf.strings.regex_full_match(tokens, r"\p{Ll}+"), tf.strings.regex_full_match(tokens, r"\p{Lu}+"),
                 tf.strings.regex_full_match(tokens, r"(?s)\p{Lu}.*"), digits > 0]
        ids = tf.fill(tf.shape(tokens), tf.constant(len(CASINGS), tf.int64))  # "other"
        for casing_id, passed in reversed(list(enumerate(tests, start=1))):  # the first test passed wins
            ids = tf.where(passed, tf.constant(casing_id, tf.int64), ids)
        return tf.where(tokens == PAD, tf.constant(0, tf.int64), ids)


class CharEncoder(layers.Layer):
    """(batch, time, chars) char ids -> (batch, time, features): each token's characters encoded
    into one vector by `encode`; padding tokens (no characters) get zeros and are masked.

    A batch repeats many tokens ("the", ",", padding), so `encode` runs once per distinct token
    and the results are copied to every occurrence: the same numbers, less work."""

    features: int
    embedding: layers.Embedding

    def __init__(self, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dropout_rate = dropout
        # only when on: a Dropout layer draws a seed, which would shift every later layer's initialisation
        self.dropout = layers.Dropout(dropout, name="char_dropout") if dropout else None

    def embed(self, char_ids):
        """The characters' embeddings, with dropout in training (Ma & Hovy 2016: before the CNN)."""
        embedded = self.embedding(char_ids)
        return self.dropout(embedded) if self.dropout else embedded

    def call(self, char_ids):
        shape = tf.shape(char_ids)
        flat = tf.reshape(char_ids, (-1, shape[2]))  # one row per token
        rows, occurrence = tf.raw_ops.UniqueV2(x=flat, axis=[0])  # distinct rows, in order of first occurrence
        has_chars = ops.any(ops.not_equal(rows, 0), axis=-1, keepdims=True)
        encoded = ops.where(has_chars, self.encode(rows), 0.0)
        return tf.reshape(tf.gather(encoded, occurrence), (shape[0], shape[1], self.features))

    def encode(self, char_ids):
        """(tokens, chars) char ids, 0 = padding -> (tokens, features)."""
        raise NotImplementedError

    def compute_mask(self, char_ids, mask=None):
        # padding tokens have no characters; without this mask, Concatenate would unmask them
        return ops.any(ops.not_equal(char_ids, 0), axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.features)


@keras.saving.register_keras_serializable(package="ner")
class CharCNN(CharEncoder):
    """Char embedding -> Conv1D -> max-pool over each token's characters (Ma & Hovy 2016).
    Padding characters (id 0) are left out of the max, so a token's features do not depend on
    how much it was padded."""

    def __init__(self, n_chars: int, char_dim: int, filters: int, kernel_size: int, dropout: float = 0.0, **kwargs):
        super().__init__(dropout=dropout, **kwargs)
        self.n_chars, self.char_dim, self.filters, self.kernel_size = n_chars, char_dim, filters, kernel_size
        self.features = filters
        self.embedding = layers.Embedding(n_chars, char_dim, name="char_embedding")
        self.conv = layers.Conv1D(filters, kernel_size, padding="same", activation="tanh", name="char_conv")

    def build(self, input_shape):
        self.embedding.build((None, input_shape[-1]))
        self.conv.build((None, input_shape[-1], self.char_dim))

    def encode(self, char_ids):
        features = self.conv(self.embed(char_ids))
        is_char = ops.expand_dims(ops.not_equal(char_ids, 0), -1)
        return ops.max(ops.where(is_char, features, -2.0), axis=1)  # tanh > -1, so -2 never wins

    def get_config(self):
        return {**super().get_config(), "n_chars": self.n_chars, "char_dim": self.char_dim,
                "filters": self.filters, "kernel_size": self.kernel_size, "dropout": self.dropout_rate}


@keras.saving.register_keras_serializable(package="ner")
class CharBiLSTM(CharEncoder):
    """Char embedding -> bidirectional LSTM over each token's characters, the final forward and
    backward states concatenated (Lample et al. 2016); padding characters masked. The LSTM is the
    FusedBiLSTM on any device, so that a tagger trained on a GPU loads without one. Tokens run in
    groups by length, each only as many steps as its longest token (the same states, half the work
    on CoNLL batches, whose short tokens would otherwise run to the longest's length)."""

    LENGTH_GROUPS = (4, 7, 10)  # up to 4 characters, 5-7, 8-10, longer

    def __init__(self, n_chars: int, char_dim: int, units: int, dropout: float = 0.0, **kwargs):
        super().__init__(dropout=dropout, **kwargs)
        self.n_chars, self.char_dim, self.units = n_chars, char_dim, units
        self.features = 2 * units
        self.embedding = layers.Embedding(n_chars, char_dim, name="char_embedding")
        self.bilstm = FusedBiLSTM(units, return_sequences=False, name="char_bilstm")

    def build(self, input_shape):
        self.embedding.build((None, input_shape[-1]))
        self.bilstm.build((None, input_shape[-1], self.char_dim))

    def encode(self, char_ids):
        lengths = ops.sum(ops.cast(ops.not_equal(char_ids, 0), "int32"), axis=1)
        group = tf.searchsorted(tf.constant(self.LENGTH_GROUPS, tf.int32), lengths, side="left")
        count = len(self.LENGTH_GROUPS) + 1
        positions = tf.dynamic_partition(tf.range(tf.shape(char_ids)[0]), group, count)
        encoded = []
        for ids, group_lengths in zip(tf.dynamic_partition(char_ids, group, count),
                                      tf.dynamic_partition(lengths, group, count)):
            ids = ids[:, :tf.maximum(ops.max(group_lengths, initial=0), 1)]  # padding tokens only: one step
            # one padding row more, dropped after: BlockLSTM's gradient for an empty batch is garbage
            ids = tf.pad(ids, [[0, 1], [0, 0]])
            encoded.append(self.bilstm(self.embed(ids), mask=ops.not_equal(ids, 0))[:-1])
        return tf.dynamic_stitch(positions, encoded)

    def get_config(self):
        return {**super().get_config(), "n_chars": self.n_chars, "char_dim": self.char_dim, "units": self.units,
                "dropout": self.dropout_rate}


# char_encoder param -> the part that encodes a token's characters (none: no part)
CHAR_ENCODERS = {
    "none": None,
    "cnn": lambda n_chars, spec: CharCNN(n_chars, spec.char_dim, spec.char_filters, spec.char_kernel_size,
                                         spec.char_dropout, name="char_encoder"),
    "lstm": lambda n_chars, spec: CharBiLSTM(n_chars, spec.char_dim, spec.char_lstm_units, spec.char_dropout,
                                             name="char_encoder"),
}


@keras.saving.register_keras_serializable(package="ner")
class TagDecoder(layers.Layer):
    """Per-token tag probabilities -> tag strings (argmax); PAD where the input token is padding.
    `tags` names each class as the tagger outputs it: a BIOES network's S-/E- classes are named by
    their IOB2 tags (see tag_classes), so every tagger speaks IOB2. `identity` is what the tagger
    knows of itself (pipeline/model/tagger.py checks it on loading): its model name, its training's
    fingerprint and the digests of the vocabularies it was built with; None in taggers saved before."""

    def __init__(self, tags: list[str], identity: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.tags = list(tags)
        self.identity = identity
        self.supports_masking = True  # the RNN's padding mask passes through harmlessly

    def call(self, inputs):
        probabilities, tokens = inputs
        tags = tf.gather(tf.constant(self.tags), tf.argmax(probabilities, axis=-1))
        return tf.where(tokens == PAD, PAD, tags)

    def get_config(self):
        return {**super().get_config(), "tags": self.tags, "identity": self.identity}


@keras.saving.register_keras_serializable(package="ner")
class WordEmbedding(layers.Layer):
    """Word ids -> vectors from two tables: the first `trained_rows` ids (padding, OOV and every word
    seen in training) in a fine-tuned table; the other ids (pretrained words that training never
    sees) in a frozen table.

    Training changes only the rows it looks up, so freezing rows it never looks up changes nothing,
    and it lets the whole GloVe vocabulary (400k words) ride with the tagger without optimizer
    slots. The frozen table is not in the .keras file: it is the same for every tagger trained on
    the same data and vocabulary, so it lives beside it, in float16 (FROZEN_ROWS_FILE,
    pipeline/model/trained.py), and DVC's content-addressed cache keeps one copy for all of them.
    It is computed in float32 (cast on loading): TensorFlow's oneDNN kernels lack float16 on some
    CPUs, and a float32 table costs the same everywhere. Rows are read with tf.nn.embedding_lookup
    (only the rows a batch uses; Keras' Embedding reads the whole table, which TensorFlow copies on
    every read once the optimizer has updated rows in place)."""

    def __init__(self, n_words: int, dim: int, trained_rows: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_words, self.dim = n_words, dim
        self.trained_rows = n_words if trained_rows is None else trained_rows
        self.supports_masking = True
        self.frozen_loaded = False  # set once the frozen rows are in place (loading a tagger checks it)

    @property
    def frozen_count(self) -> int:
        return self.n_words - self.trained_rows

    def build(self, input_shape):
        self.trained = self.add_weight(shape=(self.trained_rows, self.dim), name="embeddings",
                                       initializer=keras.initializers.RandomUniform(-0.05, 0.05))  # as Keras'
        self.frozen = self.add_weight(shape=(self.frozen_count, self.dim), name="frozen_embeddings",
                                      initializer="zeros", trainable=False)

    def call(self, word_ids):
        is_frozen = word_ids >= self.trained_rows
        # frozen positions look up row 0 (padding) of the trained table: masked, and no gradient reaches OOV
        trained = tf.nn.embedding_lookup(self.trained.value, tf.where(is_frozen, tf.zeros_like(word_ids), word_ids))
        if self.frozen_count == 0:
            return trained
        frozen = tf.nn.embedding_lookup(self.frozen.value, tf.maximum(word_ids - self.trained_rows, 0))
        return tf.where(is_frozen[..., None], frozen, trained)

    def compute_mask(self, word_ids, mask=None):
        return ops.not_equal(word_ids, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.dim)

    def save_own_variables(self, store):
        store["0"] = ops.convert_to_numpy(self.trained)  # the frozen rows are saved beside the file

    def load_own_variables(self, store):
        self.trained.assign(store["0"])
        if "1" in store:  # a tagger saved before the frozen rows moved out of the file carries them
            self.set_frozen(np.asarray(store["1"]))

    def set_frozen(self, rows: np.ndarray) -> None:
        """The frozen table, as stored (float16): computed in float32."""
        self.frozen.assign(rows.astype(np.float32))
        self.frozen_loaded = True

    def set_rows(self, vectors: np.ndarray) -> None:
        """Every row, trained and frozen, from one (n_words, dim) matrix; the frozen ones rounded to
        float16, as they are stored."""
        self.trained.assign(vectors[: self.trained_rows])
        self.set_frozen(vectors[self.trained_rows :].astype(np.float16))

    def frozen_rows(self) -> np.ndarray:
        """The frozen table as it is stored: float16."""
        return ops.convert_to_numpy(self.frozen).astype(np.float16)

    def rows(self) -> np.ndarray:
        return np.concatenate([ops.convert_to_numpy(self.trained), ops.convert_to_numpy(self.frozen)])

    def get_config(self):
        return {**super().get_config(), "n_words": self.n_words, "dim": self.dim, "trained_rows": self.trained_rows}


@keras.saving.register_keras_serializable(package="ner")
class WordDropout(layers.Layer):
    """Training only: each word id (not padding) becomes the OOV id with probability `rate`, so the
    network learns to lean on characters and context for words it has not seen (Lample et al. 2016)."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, word_ids, training=None):
        if not training or self.rate == 0:
            return word_ids
        dropped = keras.random.uniform(ops.shape(word_ids), seed=self.seed_generator) < self.rate
        return ops.where(ops.logical_and(dropped, word_ids > 1), ops.ones_like(word_ids), word_ids)  # 1 = OOV

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}

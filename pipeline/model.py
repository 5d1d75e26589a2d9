"""The taggers, built from parts: a token encoder (strings -> ids, inside the graph), a network
(word embedding [+ casing feature] [+ char encoder] -> bidirectional RNN -> softmax or CRF) and a
tag decoder. Which parts a tagger has is data: its `TaggerParams` (params.yaml's `model` with the
variant's changes); the char encoders are registered in CHAR_ENCODERS.

The saved tagger chains all three, so it takes raw token strings and returns tag strings:
inference needs no vocabulary files. Training runs the network on ids that the encoder
computes in the tf.data pipeline, off the network's critical path.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from pipeline.bilstm import bidirectional_lstm
from pipeline.crf import CRF, CRFLoss
from pipeline.optimizers import make_optimizer
from pipeline.params import TaggerParams, TrainParams
from pipeline.vocabulary import Vocabulary

PAD = ""  # padding token; also the StringLookup mask token, so it maps to id 0
# cell -> its bidirectional layer over (batch, time, features); lstm: a fused kernel on CPUs (bilstm.py)
RNN_LAYERS = {
    "simple": lambda units, name: layers.Bidirectional(layers.SimpleRNN(units, return_sequences=True), name=name),
    "gru": lambda units, name: layers.Bidirectional(layers.GRU(units, return_sequences=True), name=name),
    "lstm": lambda units, name: bidirectional_lstm(units, name=name),
}
# casing classes of Reimers & Gurevych (2017); id 0 is padding, ids follow this order from 1
CASINGS = ("numeric", "mainly_numeric", "all_lower", "all_upper", "initial_upper", "contains_digit", "other")
CASING_DIM = len(CASINGS)
STEPS_PER_EXECUTION = 16  # training steps per call of Keras' compiled train function


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
    backward states concatenated (Lample et al. 2016). Padding characters are masked."""

    def __init__(self, n_chars: int, char_dim: int, units: int, dropout: float = 0.0, **kwargs):
        super().__init__(dropout=dropout, **kwargs)
        self.n_chars, self.char_dim, self.units = n_chars, char_dim, units
        self.features = 2 * units
        self.embedding = layers.Embedding(n_chars, char_dim, name="char_embedding")
        self.bilstm = bidirectional_lstm(units, return_sequences=False, name="char_bilstm")

    def build(self, input_shape):
        self.embedding.build((None, input_shape[-1]))
        self.bilstm.build((None, input_shape[-1], self.char_dim))

    def encode(self, char_ids):
        # run only as many steps as the longest token of the batch has characters
        width = ops.max(ops.sum(ops.cast(ops.not_equal(char_ids, 0), "int32"), axis=1))
        char_ids = char_ids[:, :width]
        return self.bilstm(self.embed(char_ids), mask=ops.not_equal(char_ids, 0))

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
    their IOB2 tags (see tag_classes), so every tagger speaks IOB2."""

    def __init__(self, tags: list[str], **kwargs):
        super().__init__(**kwargs)
        self.tags = list(tags)
        self.supports_masking = True  # the RNN's padding mask passes through harmlessly

    def call(self, inputs):
        probabilities, tokens = inputs
        tags = tf.gather(tf.constant(self.tags), tf.argmax(probabilities, axis=-1))
        return tf.where(tokens == PAD, PAD, tags)

    def get_config(self):
        return {**super().get_config(), "tags": self.tags}


def tag_classes(tags: list[str], scheme: str) -> list[str]:
    """The network's classes for IOB2 `tags` (the vocabulary's): the same, or with BIOES each B-X
    and I-X gains S-X and E-X (single-token entities and last tokens; Ratinov & Roth 2009)."""
    if scheme == "iob2":
        return list(tags)
    extra = {"B": "S", "I": "E"}
    return [c for tag in tags for c in ([tag] if tag == "O" else [tag, f"{extra[tag[0]]}-{tag[2:]}"])]


def output_tags(classes: list[str]) -> list[str]:
    """The IOB2 tag each class is output as: S- as B-, E- as I- (exact for well-formed BIOES)."""
    return [{"S": "B", "E": "I"}.get(c[0], c[0]) + c[1:] for c in classes]


def build_encoder(words: list[str], chars: list[str] | None, lowercase: bool, max_word_length: int,
                  casing: bool = False) -> keras.Model:
    """Token strings -> {"word_ids", "casing_ids" (with `casing`), "char_ids" (when `chars` is given)};
    unknown words/chars -> id 1."""
    tokens = keras.Input(shape=(None,), dtype="string", name="tokens")
    word_keys = Lowercase(name="lowercase")(tokens) if lowercase else tokens
    outputs = {"word_ids": layers.StringLookup(vocabulary=words, mask_token=PAD, name="word_lookup")(word_keys)}
    if casing:
        outputs["casing_ids"] = CasingIds(name="casing")(tokens)
    if chars is not None:
        char_strings = CharSplit(max_word_length, name="char_split")(tokens)
        outputs["char_ids"] = layers.StringLookup(vocabulary=chars, mask_token=PAD, name="char_lookup")(char_strings)
    return keras.Model(tokens, outputs, name="token_encoder")


@keras.saving.register_keras_serializable(package="ner")
class WordEmbedding(layers.Layer):
    """Word ids -> vectors from two tables: the first `trained_rows` ids (padding, OOV and every word
    seen in training) in a fine-tuned float32 table; the other ids (pretrained words that training
    never sees) in a frozen float16 table.

    Training changes only the rows it looks up, so freezing rows it never looks up changes nothing,
    and it lets the whole GloVe vocabulary (400k words) ride in the tagger at 2 bytes a number:
    38 MB instead of 80 MB, with no optimizer slots for the frozen part. Rows are read with
    tf.nn.embedding_lookup (only the rows a batch uses; Keras' Embedding reads the whole table,
    which TensorFlow copies on every read once the optimizer has updated rows in place)."""

    def __init__(self, n_words: int, dim: int, trained_rows: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_words, self.dim = n_words, dim
        self.trained_rows = n_words if trained_rows is None else trained_rows
        self.supports_masking = True

    def build(self, input_shape):
        self.trained = self.add_weight(shape=(self.trained_rows, self.dim), name="embeddings",
                                       initializer=keras.initializers.RandomUniform(-0.05, 0.05))  # as Keras'
        self.frozen = self.add_weight(shape=(self.n_words - self.trained_rows, self.dim), name="frozen_embeddings",
                                      initializer="zeros", dtype="float16", trainable=False)

    def call(self, word_ids):
        is_frozen = word_ids >= self.trained_rows
        # frozen positions look up row 0 (padding) of the trained table: masked, and no gradient reaches OOV
        trained = tf.nn.embedding_lookup(self.trained.value, tf.where(is_frozen, tf.zeros_like(word_ids), word_ids))
        if self.n_words == self.trained_rows:
            return trained
        frozen_ids = tf.maximum(word_ids - self.trained_rows, 0)
        frozen = tf.cast(tf.nn.embedding_lookup(self.frozen.value, frozen_ids), trained.dtype)
        return tf.where(is_frozen[..., None], frozen, trained)

    def compute_mask(self, word_ids, mask=None):
        return ops.not_equal(word_ids, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.dim)

    def set_rows(self, vectors: np.ndarray) -> None:
        """Every row, trained and frozen, from one (n_words, dim) matrix."""
        self.trained.assign(vectors[: self.trained_rows])
        self.frozen.assign(vectors[self.trained_rows :].astype(np.float16))

    def rows(self) -> np.ndarray:
        return np.concatenate([ops.convert_to_numpy(self.trained), ops.convert_to_numpy(self.frozen).astype(np.float32)])

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


def word_embedding(n_words: int, params: TaggerParams, word_vectors: np.ndarray | None, word_ids,
                   trained_words: int | None = None) -> keras.KerasTensor:
    """The word embedding of `word_ids`, its rows set from `word_vectors` where given (finite rows);
    rows of the first `trained_words` vocabulary words are fine-tuned, later ones frozen. Rows with
    no vector keep their seeded random initialisation."""
    trained_rows = None if trained_words is None else trained_words + 2  # + padding and OOV
    embedding = WordEmbedding(n_words, params.word_dim, trained_rows, name="word_embedding")
    if params.word_dropout:
        word_ids = WordDropout(params.word_dropout, name="word_dropout")(word_ids)
    features = embedding(word_ids)
    if word_vectors is not None:
        initial = embedding.rows()
        known = np.isfinite(word_vectors).all(axis=1)
        initial[2:][known] = word_vectors[known]  # rows 0 and 1: padding and OOV
        embedding.set_rows(initial)
    return features


def sequence_dropout(params: TaggerParams, name: str) -> layers.Dropout:
    """Dropout on (batch, time, features): per number, or with `variational_dropout` one mask per
    sentence, the same features dropped at every time step (Gal & Ghahramani 2016; Reimers &
    Gurevych 2017 found it the better placement for sequence taggers)."""
    return layers.Dropout(params.dropout, noise_shape=(None, 1, None) if params.variational_dropout else None,
                          name=name)


def build_network(n_words: int, n_chars: int, n_tags: int, params: TaggerParams,
                  word_vectors: np.ndarray | None = None, trained_words: int | None = None) -> keras.Model:
    """Ids -> per-token tag probabilities (softmax) or Viterbi one-hots (CRF, outside training).

    `n_words`/`n_chars` count the lookup's ids: vocabulary + padding + OOV; `word_vectors` has one
    row per vocabulary word, of which the first `trained_words` (None: all) are fine-tuned. The char
    encoder is `params.char_encoder`'s part (none: no char input).
    """
    word_ids = keras.Input(shape=(None,), dtype="int64", name="word_ids")
    inputs = {"word_ids": word_ids}
    features = [word_embedding(n_words, params, word_vectors, word_ids, trained_words)]
    if params.casing:
        inputs["casing_ids"] = keras.Input(shape=(None,), dtype="int64", name="casing_ids")
        # mask_zero: Concatenate ORs its inputs' masks, so every part must mask padding
        features.append(layers.Embedding(len(CASINGS) + 1, CASING_DIM, mask_zero=True,
                                         name="casing_embedding")(inputs["casing_ids"]))
    if make_char_encoder := CHAR_ENCODERS[params.char_encoder]:
        inputs["char_ids"] = keras.Input(shape=(None, None), dtype="int64", name="char_ids")
        features.append(make_char_encoder(n_chars, params)(inputs["char_ids"]))
    x = layers.Concatenate(name="token_features")(features) if len(features) > 1 else features[0]
    x = sequence_dropout(params, name="input_dropout")(x)
    for layer in range(1, params.rnn_layers + 1):  # stacked: each layer reads the one below, dropout between
        x = RNN_LAYERS[params.cell](params.units, name="bidirectional" if layer == 1 else f"bidirectional_{layer}")(x)
        x = sequence_dropout(params, name="output_dropout" if layer == params.rnn_layers else f"dropout_{layer}")(x)
    if params.decoder == "crf":
        outputs = CRF(n_tags, name="crf")(layers.Dense(n_tags, name="tag_scores")(x))
    else:
        outputs = layers.Dense(n_tags, activation="softmax", name="tag_softmax")(x)
    return keras.Model(inputs, outputs, name="network")


def tagging_loss(network: keras.Model, params: TaggerParams) -> keras.losses.Loss:
    """The training loss for labels that mark padding with -1: the CRF's sequence NLL, or
    per-token cross-entropy averaged over real tokens."""
    if params.decoder == "crf":
        return CRFLoss(network.get_layer("crf"))
    return keras.losses.SparseCategoricalCrossentropy(ignore_class=-1, reduction="mean_with_sample_weight")


def build_tagger(encoder: keras.Model, network: keras.Model, classes: list[str]) -> keras.Model:
    """Token strings (batch, time), PAD-padded -> IOB2 tag strings (batch, time)."""
    tokens = keras.Input(shape=(None,), dtype="string", name="tokens")
    probabilities = network(encoder(tokens))
    decoder = TagDecoder(output_tags(classes), name="tag_decoder")
    return keras.Model(tokens, decoder([probabilities, tokens]), name="tagger")


def pad_batch(sentences: list[list[str]]) -> np.ndarray:
    width = max(len(tokens) for tokens in sentences)
    return np.array([tokens + [PAD] * (width - len(tokens)) for tokens in sentences], dtype=object)


def build_trainable(spec: TaggerParams, train: TrainParams, vocabulary: Vocabulary, lowercase: bool,
                    max_word_length: int, trained_words: int | None = None
                    ) -> tuple[keras.Model, keras.Model, keras.Model]:
    """(encoder, compiled training model, tagger) for one tagger, whose network predicts
    tag_classes(vocabulary.tags, spec.tag_scheme); the first `trained_words` words (None: all)
    are fine-tuned. Set the seed first for repeatable weights."""
    with_chars = CHAR_ENCODERS[spec.char_encoder] is not None
    encoder = build_encoder(vocabulary.words, vocabulary.chars if with_chars else None, lowercase, max_word_length,
                            spec.casing)
    # lookup ids = vocabulary + padding + OOV
    classes = tag_classes(vocabulary.tags, spec.tag_scheme)
    network = build_network(len(vocabulary.words) + 2, len(vocabulary.chars) + 2, len(classes), spec,
                            vocabulary.word_vectors, trained_words)
    # compile a twin that shares the network's layers: the saved tagger then holds an uncompiled
    # network, and the CRF loss (which refers to the CRF layer) stays out of the file
    trainer = keras.Model(network.inputs, network.outputs, name="trainer")
    # several steps per call of the compiled train function: less Python between steps, the same steps
    trainer.compile(optimizer=make_optimizer(train), loss=tagging_loss(network, spec),
                    steps_per_execution=STEPS_PER_EXECUTION)
    return encoder, trainer, build_tagger(encoder, network, classes)

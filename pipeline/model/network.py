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
from keras import layers

from pipeline.data.vocabulary import Vocabulary
from pipeline.model.bilstm import bidirectional_lstm
from pipeline.model.casing import CASINGS
from pipeline.model.crf import CRF, CRFLoss
from pipeline.model.layers import (
    CASING_DIM,
    CHAR_ENCODERS,
    PAD,
    CasingIds,
    CharSplit,
    Lowercase,
    TagDecoder,
    WordDropout,
    WordEmbedding,
)
from pipeline.model.optimizers import make_optimizer
from pipeline.params import TaggerParams, TrainParams

# cell -> its bidirectional layer over (batch, time, features); lstm: a fused kernel on CPUs (bilstm.py)
RNN_LAYERS = {
    "simple": lambda units, name: layers.Bidirectional(layers.SimpleRNN(units, return_sequences=True), name=name),
    "gru": lambda units, name: layers.Bidirectional(layers.GRU(units, return_sequences=True), name=name),
    "lstm": lambda units, name: bidirectional_lstm(units, name=name),
}
STEPS_PER_EXECUTION = 16  # training steps per call of Keras' compiled train function


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


def build_tagger(encoder: keras.Model, network: keras.Model, classes: list[str], identity: dict | None = None
                 ) -> keras.Model:
    """Token strings (batch, time), PAD-padded -> IOB2 tag strings (batch, time)."""
    tokens = keras.Input(shape=(None,), dtype="string", name="tokens")
    probabilities = network(encoder(tokens))
    decoder = TagDecoder(output_tags(classes), identity, name="tag_decoder")
    return keras.Model(tokens, decoder([probabilities, tokens]), name="tagger")


def pad_batch(sentences: list[list[str]]) -> np.ndarray:
    width = max(len(tokens) for tokens in sentences)
    return np.array([tokens + [PAD] * (width - len(tokens)) for tokens in sentences], dtype=object)


def build_trainable(spec: TaggerParams, train: TrainParams, vocabulary: Vocabulary, lowercase: bool,
                    max_word_length: int, trained_words: int | None = None, identity: dict | None = None
                    ) -> tuple[keras.Model, keras.Model, keras.Model]:
    """(encoder, compiled training model, tagger) for one tagger, whose network predicts
    tag_classes(vocabulary.tags, spec.tag_scheme); the first `trained_words` words (None: all)
    are fine-tuned; the tagger carries `identity` (see TagDecoder). Set the seed first for
    repeatable weights."""
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
    # its slots now, not inside the first trace of the train function: a tf.function that creates
    # variables is traced a second time (2-5 s of every training on 2 cores)
    trainer.optimizer.build(trainer.trainable_variables)
    return encoder, trainer, build_tagger(encoder, network, classes, identity)

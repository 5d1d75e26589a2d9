"""The forward pass of a saved tagger in NumPy: how `evaluate`, `predict`, the MLflow model and the
benchmark tag, where the tagger's recurrent cells are LSTMs (every tagger params.yaml trains).

Why not TensorFlow: tagging one sentence through the Keras graph costs about 4 ms on 2 cores, most
of it per-op dispatch (about 90 small ops, a scan for the CRF), and XLA cannot compile the fused
LSTM kernel (BlockLSTM has no XLA kernel); loading a tagger builds a 400,000-word StringLookup
table, about 8 s. Here the same arithmetic runs as a few NumPy calls per time step, and the
vocabularies are plain dicts read from the file's config. Every token is encoded once (its word
vector, casing vector and character features do not depend on its neighbours), so a batch costs
the recurrences, the output layer and the Viterbi decoding. The encoder's two string rules
(lower-casing, the casing class) run in Python, as the Lowercase and CasingIds layers define
them; tests/test_forward.py checks that it tags exactly as the Keras graph does, and that the
string rules agree with the layers' on every token of CoNLL-2003.

A tagger with GRU or simple RNN cells is tagged by its Keras graph (`supports` says which).
"""
from __future__ import annotations

import copy
import json
import unicodedata
import zipfile
from pathlib import Path

import numpy as np

from pipeline.model.numpy_layers import BiLSTM, reversed_each, viterbi

NETWORK, ENCODER, DECODER = "network", "token_encoder", "tag_decoder"
LOOKUPS = {"word_lookup": "words", "char_lookup": "chars"}
CACHE_LIMIT = 100_000  # distinct tokens whose projections are kept between batches (3.2 KB each at 100 units)


def saved_config(tagger_file: Path) -> dict:
    """The Keras config of a .keras file (its config.json)."""
    with zipfile.ZipFile(tagger_file) as archive:
        return json.loads(archive.read("config.json"))


def _layers(config: dict, name: str) -> dict[str, dict]:
    """The layers of the tagger's part `name` (network, token_encoder), by name."""
    [part] = [layer for layer in config["config"]["layers"] if layer["config"]["name"] == name]
    return {layer["config"]["name"]: layer for layer in part["config"]["layers"]}


def is_bilstm(layer: dict) -> bool:
    """A FusedBiLSTM, or Keras' Bidirectional(LSTM) (what a tagger built where a GPU was has)."""
    return layer["class_name"] == "FusedBiLSTM" or (
        layer["class_name"] == "Bidirectional" and layer["config"]["layer"]["class_name"] == "LSTM")


def supports(config: dict) -> bool:
    """Whether this forward pass can run the tagger: its recurrent layers are LSTMs."""
    network = _layers(config, NETWORK)
    recurrent = [layer for name, layer in network.items() if name.startswith("bidirectional")]
    char_encoder = network.get("char_encoder", {}).get("class_name")
    return bool(recurrent) and all(map(is_bilstm, recurrent)) and char_encoder in (None, "CharCNN", "CharBiLSTM")


def take_vocabularies(config: dict) -> dict[str, list[str]]:
    """Remove the lookups' vocabularies from `config` (leaving one word each, so that Keras builds
    the rest of the tagger in well under a second) and return them: {"words": [...], "chars": [...]}."""
    vocabularies = {}
    for name, layer in _layers(config, ENCODER).items():
        if name in LOOKUPS:
            vocabularies[LOOKUPS[name]] = layer["config"]["vocabulary"]
            layer["config"].update(vocabulary=vocabularies[LOOKUPS[name]][:1], vocabulary_size=None)
    return vocabularies


def casing_class(token: str) -> int:
    """The casing class id of a token (1-based in layers.CASINGS), by the rules of the tagger's
    CasingIds layer: here in Python, as that layer's dozen TensorFlow string ops cost about 1 ms
    per call, most of a new sentence's latency. Unicode categories as RE2's \\p{Ll} and \\p{Lu};
    tests/test_forward.py checks both on every token of CoNLL-2003 and on edge cases."""
    digits = sum(char in "0123456789" for char in token)
    if digits == len(token) and token:
        return 1  # numeric
    if 2 * digits > len(token):
        return 2  # mainly_numeric
    categories = [unicodedata.category(char) for char in token]
    if token and all(category == "Ll" for category in categories):
        return 3  # all_lower
    if token and all(category == "Lu" for category in categories):
        return 4  # all_upper
    if token and categories[0] == "Lu":
        return 5  # initial_upper
    return 6 if digits else 7  # contains_digit, other


_TABLES: dict[tuple[str, ...], dict[str, int]] = {}


def lookup_table(vocabulary: list[str]) -> dict[str, int]:
    """A StringLookup's ids: 0 padding, 1 unknown, then the vocabulary's words. The taggers of one
    run share their vocabulary (400,000 words with GloVe), so its table is built once."""
    key = tuple(vocabulary)
    if key not in _TABLES:
        if len(_TABLES) >= 4:  # a run needs two: its words and its characters
            _TABLES.clear()
        _TABLES[key] = {word: i for i, word in enumerate(vocabulary, start=2)}
    return _TABLES[key]


def arrays(*variables) -> list[np.ndarray]:
    return [np.asarray(variable.numpy(), np.float32) for variable in variables]


class ForwardPass:
    """Token strings -> tag strings, with the weights of a loaded Keras tagger (built by
    `take_vocabularies`' config) and the vocabularies taken from its file."""

    def __init__(self, keras_tagger, config: dict, vocabularies: dict[str, list[str]]):
        network = keras_tagger.get_layer(NETWORK)
        encoder = _layers(config, ENCODER)
        layers = _layers(config, NETWORK)
        self.tags = np.array(keras_tagger.get_layer(DECODER).tags, dtype=object)
        self.lowercase = "lowercase" in encoder
        self.words = lookup_table(vocabularies["words"])
        embedding = network.get_layer("word_embedding")
        self.trained, self.frozen = arrays(embedding.trained, embedding.frozen)
        self.casing = arrays(network.get_layer("casing_embedding").embeddings)[0] if "casing_embedding" in layers \
            else None
        self.char_encoder = layers.get("char_encoder", {}).get("class_name")
        if self.char_encoder:
            char_encoder = network.get_layer("char_encoder")
            self.chars = lookup_table(vocabularies["chars"])
            self.max_word_length = encoder["char_split"]["config"]["max_word_length"]
            [self.char_embedding] = arrays(*char_encoder.embedding.weights)
            if self.char_encoder == "CharCNN":
                self.conv_kernel, self.conv_bias = arrays(char_encoder.conv.kernel, char_encoder.conv.bias)
            else:
                self.char_bilstm = BiLSTM(arrays(*char_encoder.bilstm.weights))
        self.rnns = [BiLSTM(arrays(*network.get_layer(name).weights)) for name in layers
                     if name.startswith("bidirectional")]
        dense = network.get_layer("tag_scores" if "crf" in layers else "tag_softmax")
        self.output = arrays(dense.kernel, dense.bias)
        self.crf = None
        if "crf" in layers:
            crf = network.get_layer("crf")
            self.crf = arrays(crf.transitions, crf.start, crf.end)
        # every token's projection by the first RNN layer (its features, hence these, do not depend
        # on its neighbours): row 0 is padding's, then one row per token in `known`, per direction
        units4 = 4 * self.rnns[0].units
        self.known: dict[str, int] = {}
        self.forward_rows = np.zeros((1024, units4), np.float32)  # grown by doubling, rows beyond `known` unused
        self.backward_rows = np.zeros((1024, units4), np.float32)

    def char_features(self, tokens: list[str]) -> np.ndarray:
        """(tokens, features) from each token's first max_word_length characters; 0 for none."""
        ids = np.zeros((len(tokens), self.max_word_length), np.int64)
        for row, token in enumerate(tokens):
            chars = [self.chars.get(char, 1) for char in token[: self.max_word_length]]
            ids[row, : len(chars)] = chars
        embedded = self.char_embedding[ids]
        is_char = ids != 0
        if self.char_encoder == "CharCNN":
            width = self.conv_kernel.shape[0]  # padding "same": (width - 1) // 2 zeros before, the rest after
            padded = np.pad(embedded, ((0, 0), ((width - 1) // 2, width // 2), (0, 0)))
            windows = np.concatenate([padded[:, k:k + self.max_word_length] for k in range(width)], axis=-1)
            convolved = np.tanh(windows @ self.conv_kernel.reshape(-1, self.conv_kernel.shape[-1]) + self.conv_bias)
            encoded = np.where(is_char[..., None], convolved, np.float32(-2)).max(axis=1)
        else:
            lengths = is_char.sum(axis=1)
            encoded = self.char_bilstm.final(embedded[:, : max(lengths.max(), 1)].transpose(1, 0, 2), lengths)
        return np.where(is_char.any(axis=1, keepdims=True), encoded, np.float32(0))

    def encode(self, tokens: list[str]) -> None:
        """Compute and keep the projections of `tokens` (distinct, not yet known)."""
        # Python's str.lower is Unicode's full lower-case mapping, as the Lowercase layer's (ICU)
        ids = np.array([self.words.get(token.lower() if self.lowercase else token, 1) for token in tokens])
        parts = [np.where((ids < len(self.trained))[:, None], self.trained[np.minimum(ids, len(self.trained) - 1)],
                          self.frozen[np.maximum(ids - len(self.trained), 0)] if len(self.frozen) else 0)]
        if self.casing is not None:
            parts.append(self.casing[[casing_class(token) for token in tokens]])
        if self.char_encoder:
            parts.append(self.char_features(tokens))
        projected = self.rnns[0].project(np.concatenate(parts, axis=-1).astype(np.float32))
        first = len(self.known) + 1
        if first + len(tokens) > len(self.forward_rows):
            grown = max(2 * len(self.forward_rows), first + len(tokens))
            self.forward_rows = np.resize(self.forward_rows, (grown, self.forward_rows.shape[1]))
            self.backward_rows = np.resize(self.backward_rows, (grown, self.backward_rows.shape[1]))
        units4 = projected.shape[-1] // 2
        self.forward_rows[first:first + len(tokens)] = projected[:, :units4]
        self.backward_rows[first:first + len(tokens)] = projected[:, units4:]
        self.known.update(zip(tokens, range(first, first + len(tokens))))

    def tag(self, sentences: list[list[str]]) -> list[list[str]]:
        """Tags for a batch of non-empty sentences (similar lengths make it fast)."""
        distinct = dict.fromkeys(token for tokens in sentences for token in tokens)
        new = [token for token in distinct if token not in self.known]
        if len(self.known) + len(new) > CACHE_LIMIT:  # start afresh, with every token this batch needs
            self.known.clear()
            new = list(distinct)
        if new:
            self.encode(new)
        longest_first = sorted(range(len(sentences)), key=lambda row: -len(sentences[row]))
        lengths = np.array([len(sentences[row]) for row in longest_first])
        ids = np.zeros((len(sentences), lengths[0]), np.int64)  # time-major below; 0: padding
        for row, original in enumerate(longest_first):
            ids[row, : lengths[row]] = [self.known[token] for token in sentences[original]]
        ids = ids.T
        first, *others = self.rnns
        states = first.run(self.forward_rows[ids], self.backward_rows[reversed_each(ids, lengths)], lengths)
        for rnn in others:
            states = rnn.states(BiLSTM.sequences(states, lengths), lengths)
        # the output layer on each direction's states: the backward ones are reversed after it, on
        # a few scores per token rather than on the states
        kernel, bias = self.output
        units = states.shape[-1]
        scores = (states[:, 0] @ kernel[:units] + reversed_each(states[:, 1] @ kernel[units:], lengths) + bias)
        paths = viterbi(scores, lengths, *self.crf) if self.crf else scores.argmax(axis=-1)
        tags = [None] * len(sentences)
        for row, original in enumerate(longest_first):
            tags[original] = list(self.tags[paths[: lengths[row], row]])
        return tags


def layout_of(keras_tagger) -> tuple[dict, dict[str, list[str]]] | None:
    """(config, vocabularies) of a Keras tagger in memory (one being trained) as `load_forward`
    reads them from a file, where the forward pass supports its layers; else None."""
    import keras
    config = keras.saving.serialize_keras_object(keras_tagger)  # what a .keras file's config.json holds
    return (config, take_vocabularies(config)) if supports(config) else None


def load_forward(tagger_file: Path):
    """(Keras tagger without its vocabularies, config, vocabularies) of a .keras file the forward pass
    supports, else None. The Keras tagger carries the weights, the tags and the identity."""
    import keras

    from pipeline.model import network as _custom_layers  # noqa: F401  (registers the custom layers)
    config = saved_config(tagger_file)
    if not supports(config):
        return None
    vocabularies = take_vocabularies(config)
    keras_tagger = keras.saving.deserialize_keras_object(copy.deepcopy(config))  # Keras consumes it
    keras_tagger.load_weights(tagger_file)
    return keras_tagger, config, vocabularies

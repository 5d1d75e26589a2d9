"""The forward pass of a saved tagger in NumPy: how `evaluate`, `predict`, the MLflow model and the
benchmark tag, where the tagger's recurrent cells are LSTMs (every tagger params.yaml trains).

Why not TensorFlow: tagging one sentence through the Keras graph costs about 4 ms on 2 cores, most
of it per-op dispatch (about 90 small ops, a scan for the CRF), and XLA cannot compile the fused
LSTM kernel (BlockLSTM has no XLA kernel); loading a tagger builds a 400,000-word StringLookup
table, about 8 s, after importing TensorFlow, about 6 s more. Here the weights are read from the
file with h5py, the same arithmetic runs as a few NumPy calls per time step, and the vocabularies
are plain dicts read from the file's config. Every token is encoded once (its word vector, casing
vector and character features do not depend on its neighbours), so a batch costs the recurrences,
the output layer and the Viterbi decoding. The encoder's two string rules (lower-casing, the
casing class: pipeline/model/casing.py) run in Python, as the Lowercase and CasingIds layers
define them; tests/test_forward.py checks that it tags exactly as the Keras graph does, that it
reads the graph's weights, and that the string rules agree with the layers' on every token of
CoNLL-2003.

A tagger with GRU or simple RNN cells is tagged by its Keras graph (`supports` says which).
"""
from __future__ import annotations

import copy
import functools
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import threadpoolctl

from pipeline.model.casing import casing_class
from pipeline.model.numpy_layers import BiLSTM, reversed_each, viterbi

NETWORK, ENCODER, DECODER = "network", "token_encoder", "tag_decoder"
LOOKUPS = {"word_lookup": "words", "char_lookup": "chars"}
CACHE_LIMIT = 100_000  # distinct tokens whose projections are kept between batches (3.2 KB each at 100 units)


def saved_config(tagger_file: Path) -> dict:
    """The Keras config of a .keras file (its config.json)."""
    with zipfile.ZipFile(tagger_file) as archive:
        return json.loads(archive.read("config.json"))


def decoder_config(config: dict) -> dict:
    """The tag decoder's config: the tag of each class, the tagger's identity (TagDecoder)."""
    [decoder] = [layer for layer in config["config"]["layers"] if layer["config"]["name"] == DECODER]
    return decoder["config"]


def _layers(config: dict, name: str) -> dict[str, dict]:
    """The layers of the tagger's part `name` (network, token_encoder), by name."""
    [part] = [layer for layer in config["config"]["layers"] if layer["config"]["name"] == name]
    return {layer["config"]["name"]: layer for layer in part["config"]["layers"]}


def is_bilstm(layer: dict) -> bool:
    """A FusedBiLSTM, or Keras' Bidirectional(LSTM) (what a tagger built where a GPU was has)."""
    return layer["class_name"] == "FusedBiLSTM" or (
        layer["class_name"] == "Bidirectional" and layer["config"]["layer"]["class_name"] == "LSTM")


# the layer classes whose arithmetic the forward pass repeats (with Keras' functional-API ops on masks):
# a tagger with any other layer is tagged by its Keras graph
KNOWN_LAYERS = {
    ENCODER: {"InputLayer", "CharSplit", "Lowercase", "CasingIds", "StringLookup"},
    NETWORK: {"InputLayer", "WordDropout", "WordEmbedding", "Embedding", "CharCNN", "CharBiLSTM", "Concatenate",
              "Dropout", "FusedBiLSTM", "Bidirectional", "Dense", "CRF", "NotEqual", "Any", "ExpandDims",
              "ZerosLike", "LogicalOr"},
}


def supports(config: dict) -> bool:
    """Whether this forward pass can run the tagger: it knows every layer, and the recurrent ones
    are LSTMs."""
    if any({layer["class_name"] for layer in _layers(config, part).values()} - known
           for part, known in KNOWN_LAYERS.items()):
        return False
    recurrent = [layer for name, layer in _layers(config, NETWORK).items() if name.startswith("bidirectional")]
    return bool(recurrent) and all(map(is_bilstm, recurrent))


def take_vocabularies(config: dict) -> dict[str, list[str]]:
    """Remove the lookups' vocabularies from `config` (leaving one word each, so that Keras builds
    the rest of the tagger in well under a second) and return them: {"words": [...], "chars": [...]}."""
    vocabularies = {}
    for name, layer in _layers(config, ENCODER).items():
        if name in LOOKUPS:
            vocabularies[LOOKUPS[name]] = layer["config"]["vocabulary"]
            layer["config"].update(vocabulary=vocabularies[LOOKUPS[name]][:1], vocabulary_size=None)
    return vocabularies


_TABLES: dict[tuple[str, ...], dict[str, int]] = {}


@functools.cache
def blas_threads() -> threadpoolctl.ThreadpoolController:
    """NumPy's BLAS, whose threads `ForwardPass.tag` limits (found once: about a millisecond)."""
    return threadpoolctl.ThreadpoolController()


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


def is_fused(config: dict) -> bool:
    """Whether every BiLSTM of a supported tagger is a FusedBiLSTM (what a CPU builds), whose file
    `saved_weights` reads without Keras; a tagger built where a GPU was has Keras' own layers."""
    return all(layer["class_name"] != "Bidirectional" for layer in _layers(config, NETWORK).values())


def saved_weights(tagger_file: Path) -> dict[str, list[np.ndarray]]:
    """The network's weights in a .keras file, by layer name (the char encoder's parts too), read
    from its model.weights.h5 with h5py: Keras stores each layer's variables in a group named after
    its class, with the layer's own name as an attribute, in the order the layer created them.
    Importing TensorFlow to rebuild the graph and read the same arrays costs about 6 s, and about 1 s
    per tagger more."""
    import h5py

    with zipfile.ZipFile(tagger_file) as archive:
        data = archive.read("model.weights.h5")
    weights: dict[str, list[np.ndarray]] = {}
    with h5py.File(io.BytesIO(data), "r") as store:
        groups: list[h5py.Group] = []
        store.visititems(lambda path, item: groups.append(item) if path.endswith("vars") else None)
        [network] = [group.parent for group in groups if group.attrs.get("name") == NETWORK]
        for group in groups:
            if group.name.startswith(network.name + "/") and len(group):
                weights[group.attrs["name"]] = [np.asarray(group[str(i)], np.float32) for i in range(len(group))]
    return weights


def graph_weights(keras_tagger) -> dict[str, list[np.ndarray]]:
    """The network's weights of a Keras tagger in memory, keyed as `saved_weights` keys a file's;
    the frozen word rows only where they are in place."""
    weights = {}
    for layer in keras_tagger.get_layer(NETWORK).layers:
        parts = [getattr(layer, part, None) for part in ("embedding", "conv", "bilstm")] if layer.name == "char_encoder" \
            else [layer]
        weights.update({part.name: arrays(*part.weights) for part in parts if part is not None and part.weights})
    embedding = keras_tagger.get_layer(NETWORK).get_layer("word_embedding")
    if embedding.frozen_count and not embedding.frozen_loaded:
        weights["word_embedding"] = weights["word_embedding"][:1]
    return weights


class ForwardPass:
    """Token strings -> tag strings, with a tagger's weights (`saved_weights` or `graph_weights`),
    its config (whose lookups `take_vocabularies` emptied) and its vocabularies."""

    def __init__(self, weights: dict[str, list[np.ndarray]], config: dict, vocabularies: dict[str, list[str]]):
        encoder = _layers(config, ENCODER)
        layers = _layers(config, NETWORK)
        self.tags = np.array(decoder_config(config)["tags"], dtype=object)
        self.lowercase = "lowercase" in encoder
        self.words = lookup_table(vocabularies["words"])
        self.trained, *frozen = weights["word_embedding"]
        embedding = layers["word_embedding"]["config"]
        self.frozen_shape = (embedding["n_words"] - embedding["trained_rows"], embedding["dim"])
        # None until the frozen rows are in place (Tagger.attach_frozen_rows reads them from beside the file)
        self.frozen = frozen[0] if frozen else np.zeros(self.frozen_shape, np.float32) if not self.frozen_shape[0] \
            else None
        self.casing = weights["casing_embedding"][0] if "casing_embedding" in layers else None
        self.char_encoder = layers.get("char_encoder", {}).get("class_name")
        if self.char_encoder:
            self.chars = lookup_table(vocabularies["chars"])
            self.max_word_length = encoder["char_split"]["config"]["max_word_length"]
            [self.char_embedding] = weights["char_embedding"]
            if self.char_encoder == "CharCNN":
                self.conv_kernel, self.conv_bias = weights["char_conv"]
            else:
                self.char_bilstm = BiLSTM(weights["char_bilstm"])
        self.rnns = [BiLSTM(weights[name]) for name in layers if name.startswith("bidirectional")]
        self.output = weights["tag_scores" if "crf" in layers else "tag_softmax"]
        self.crf = weights["crf"] if "crf" in layers else None
        # every token's projections by the first RNN layer, both directions' (its features, hence
        # these, do not depend on its neighbours): row 0 is padding's, then one row per token in `known`
        self.known: dict[str, int] = {}
        self.projections = np.zeros((1024, 8 * self.rnns[0].units), np.float32)  # grown by doubling

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
        first = len(self.known) + 1
        if first + len(tokens) > len(self.projections):  # rows beyond `known` are unused
            grown = max(2 * len(self.projections), first + len(tokens))
            self.projections = np.resize(self.projections, (grown, self.projections.shape[1]))
        self.projections[first:first + len(tokens)] = self.rnns[0].project(
            np.concatenate(parts, axis=-1).astype(np.float32))
        self.known.update(zip(tokens, range(first, first + len(tokens))))

    def tag(self, sentences: list[list[str]]) -> list[list[str]]:
        """Tags for a batch of non-empty sentences (similar lengths make it fast), on one BLAS thread:
        at these matrix sizes a second thread gives no speed (the same time, twice the CPU: see
        benchmarks/inference.py) and would take the core of whatever runs beside, such as the other
        training of a `dvc repro`, whose dev set is tagged here after every epoch."""
        with blas_threads().limit(limits=1, user_api="blas"):
            return self._tag(sentences)

    def _tag(self, sentences: list[list[str]]) -> list[list[str]]:
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
        states = first.token_states(self.projections, ids, lengths)
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


def load_forward(tagger_file: Path, config: dict) -> tuple[ForwardPass, dict[str, list[str]]] | None:
    """(forward pass, vocabularies) of a .keras file whose `config` (saved_config) the forward pass
    supports, else None. Its weights are read without Keras where every BiLSTM is fused (`is_fused`);
    a tagger built where a GPU was is loaded by Keras for them."""
    config = copy.deepcopy(config)
    if not supports(config):
        return None
    vocabularies = take_vocabularies(config)
    if is_fused(config):
        return ForwardPass(saved_weights(tagger_file), config, vocabularies), vocabularies
    import keras

    from pipeline.model import network as _custom_layers  # noqa: F401  (registers the custom layers)
    keras_tagger = keras.saving.deserialize_keras_object(copy.deepcopy(config))  # Keras consumes it
    keras_tagger.load_weights(tagger_file)
    return ForwardPass(graph_weights(keras_tagger), config, vocabularies), vocabularies

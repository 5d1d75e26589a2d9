"""The one inference path: the Python API, and what training's dev-F1 callback, `evaluate`,
`predict`, the benchmark and the MLflow model all tag through.

    from pipeline import Tagger
    Tagger.load("models/char_cnn").tag(["Peter lives in Berlin ."])

`Tagger.load` takes a model folder (models/<name>, models/<name>/seed_<n>, or any folder with a
tagger.keras). For an MLflow model URI (`runs:/<id>/tagger`, `models:/ner-char-cnn/1`, ...),
fetch the folder first: `Tagger.load(pipeline.tracking.models.download_model(uri))`, which is
what `ner predict --model <uri>` does; tagging itself needs no MLflow.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from seqeval.metrics.sequence_labeling import get_entities

from pipeline.data.tokenize import tokenize
from pipeline.errors import PipelineError
from pipeline.model.forward import ForwardPass, decoder_config, graph_weights, load_forward, saved_config
from pipeline.model.trained import FROZEN_ROWS_FILE, SUMMARY_FILE, find_tagger_file


@dataclass
class Entity:
    text: str
    type: str
    start: int  # token index of the first token
    end: int  # token index after the last token
    char_start: int  # character offsets in the sentence's text: text[char_start:char_end] == entity text
    char_end: int


@dataclass
class TaggedSentence:
    text: str
    tokens: list[str]
    tags: list[str]
    entities: list[Entity] = field(default_factory=list)
    skipped: str | None = None  # why nothing was tagged (e.g. an empty line)

    def to_dict(self) -> dict:
        result = asdict(self)
        if self.skipped is None:
            del result["skipped"]
        return result


def entities_of(text: str, tokens: list[str], spans: list[tuple[int, int]], tags: list[str]) -> list[Entity]:
    """Entity spans from IOB tags, chunked by conlleval's rules (as the F1 is computed)."""
    entities = []
    for entity_type, first, last in get_entities(tags):
        char_start, char_end = spans[first][0], spans[last][1]
        entities.append(Entity(text[char_start:char_end], entity_type, first, last + 1, char_start, char_end))
    return entities


def spans_of_joined(tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Pre-tokenized input: the text is the tokens joined by spaces; their spans in it."""
    spans, position = [], 0
    for token in tokens:
        spans.append((position, position + len(token)))
        position += len(token) + 1
    return " ".join(tokens), spans


def list_digest(items: list[str]) -> str:
    return hashlib.sha256("\n".join(items).encode("utf-8")).hexdigest()


def tagger_identity(model: str, fingerprint: str, words: list[str], chars: list[str] | None,
                    frozen_rows: bytes | None = None) -> dict:
    """What a saved tagger knows of itself: its model name, its training's fingerprint (the one
    summary.json records), the digests of the vocabularies its token encoder embeds and that of
    the frozen word rows it reads from beside its file (FROZEN_ROWS_FILE)."""
    return {"model": model, "fingerprint": fingerprint, "words_sha256": list_digest(words),
            "chars_sha256": list_digest(chars) if chars is not None else None,
            "frozen_rows_sha256": hashlib.sha256(frozen_rows).hexdigest() if frozen_rows is not None else None}


WINDOW = 1000  # tokens: a longer sentence is tagged in consecutive windows of this many
MAX_BATCH_TOKENS = 65536  # padded tokens per call of the network (no CoNLL-2003 batch of 256 reaches it)


def token_bounded_batches(pieces: list, batch_size: int):
    """Consecutive runs of `pieces` (sorted by length; each (.., .., tokens)) of at most `batch_size`
    pieces and MAX_BATCH_TOKENS padded tokens."""
    batch: list = []
    for piece in pieces:
        if batch and (len(batch) == batch_size or (len(batch) + 1) * len(piece[2]) > MAX_BATCH_TOKENS):
            yield batch
            batch = []
        batch.append(piece)
    if batch:
        yield batch


class Tagger:
    """A tagger: the NumPy forward pass of its weights (pipeline/model/forward.py) where it supports
    the tagger's layers (the same tags as the Keras graph, faster, and loaded from a file without
    TensorFlow), else the Keras graph."""

    def __init__(self, class_tags: list[str], identity: dict | None, source: str = ""):
        self.model = None  # the Keras graph, where it tags (or is being trained)
        self.forward: ForwardPass | None = None
        self.source = source
        # the IOB2 tags it can output (a BIOES network outputs B-/I- for its S-/E- classes)
        self.tags: list[str] = list(dict.fromkeys(class_tags))
        # what it knows of itself (see TagDecoder); None in taggers saved before
        self.identity = identity

    @classmethod
    def of_graph(cls, keras_tagger, source: str = "") -> "Tagger":
        """The tagger of a Keras graph, tagged by that graph."""
        decoder = keras_tagger.get_layer("tag_decoder")
        tagger = cls(decoder.tags, decoder.identity, source)
        tagger.model = keras_tagger
        return tagger

    @classmethod
    def load(cls, location: str | Path) -> "Tagger":
        path = Path(location)
        if not path.exists():
            raise PipelineError(f"{location}: no such model folder")
        tagger_file = find_tagger_file(path)
        tagger = cls.from_file(tagger_file)
        summary_file = tagger_file.parent / SUMMARY_FILE
        if summary_file.is_file():
            try:
                summary = json.loads(summary_file.read_text())
            except ValueError:
                raise PipelineError(f"{summary_file}: not valid JSON; train the model again (dvc repro)") from None
            tagger.check_trained_as(summary, summary_file)
        return tagger

    @classmethod
    def from_file(cls, tagger_file: str | Path, frozen_rows_file: str | Path | None = None) -> "Tagger":
        """The tagger of a .keras file, with the frozen word rows of `frozen_rows_file` (default:
        FROZEN_ROWS_FILE beside it) where it has some."""
        if not zipfile.is_zipfile(tagger_file):  # Keras would say "File not found" for a file that exists
            raise PipelineError(f"{tagger_file}: not a complete .keras file (truncated or corrupt); train it again "
                                "(dvc repro) or fetch it again (dvc pull)")
        try:
            config = saved_config(Path(tagger_file))
            decoder = decoder_config(config)
            tagger = cls(decoder["tags"], decoder.get("identity"), str(tagger_file))
            loaded = load_forward(Path(tagger_file), config)
            if loaded:
                tagger.forward, vocabularies = loaded
            else:
                import keras

                from pipeline.model import network as _custom_layers  # noqa: F401  (registers the custom layers)
                tagger.model, vocabularies = keras.saving.load_model(tagger_file), None
        except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as error:
            # TypeError/ValueError: also what Keras raises for a file whose layers have changed since
            cause = f"no {error.args[0]!r} in it" if isinstance(error, KeyError) else \
                str(error).strip().splitlines()[-1].removeprefix("Exception encountered: ")  # Keras nests them
            raise PipelineError(f"{tagger_file}: this version cannot load it as a tagger ({cause}); a tagger saved "
                                "by another version of the project must be trained again (dvc repro)") from None
        tagger.check_vocabularies(vocabularies)
        tagger.attach_frozen_rows(Path(frozen_rows_file or Path(tagger_file).parent / FROZEN_ROWS_FILE))
        return tagger

    @classmethod
    def in_training(cls, keras_tagger, layout: tuple[dict, dict] | None) -> "Tagger":
        """A tagger of a network being trained, with its present weights: their NumPy forward pass
        where `layout` (forward.layout_of, once per training) says it supports the layers, else the
        Keras graph."""
        tagger = cls.of_graph(keras_tagger)
        if layout:
            tagger.forward = ForwardPass(graph_weights(keras_tagger), *layout)
        return tagger

    def attach_frozen_rows(self, path: Path) -> None:
        """Put the frozen word rows in place from their file, if the tagger has some and its .keras
        file did not carry them (taggers saved before they moved out of it did); the file must be
        the one it was trained with."""
        if self.forward:
            shape, loaded = self.forward.frozen_shape, self.forward.frozen is not None
        else:
            embedding = self.model.get_layer("network").get_layer("word_embedding")
            shape, loaded = (embedding.frozen_count, embedding.dim), embedding.frozen_loaded
        if shape[0] == 0 or loaded:
            return
        try:
            data = path.read_bytes()
        except OSError as error:
            raise PipelineError(f"{path}: cannot read the tagger's frozen word vectors ({error.strerror}); restore "
                                "the folder (dvc checkout or dvc pull) or train it again (dvc repro)") from None
        recorded = (self.identity or {}).get("frozen_rows_sha256")
        digest = hashlib.sha256(data).hexdigest()
        if recorded is not None and digest != recorded:
            raise PipelineError(f"{path}: not the frozen word vectors {self.source} was trained with (sha256 "
                                f"{digest[:12]}, it expects {recorded[:12]}); restore the folder (dvc checkout) "
                                "or train it again (dvc repro)")
        try:
            rows = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as error:
            raise PipelineError(f"{path}: not a .npy file ({error})") from None
        if rows.shape != shape:
            raise PipelineError(f"{path}: {rows.shape} frozen word vectors, {self.source} needs {shape}; restore "
                                "the folder (dvc checkout)")
        if self.forward:
            self.forward.frozen = rows.astype(np.float32)  # as the Keras layer computes them (set_frozen)
        else:
            embedding.set_frozen(rows)

    def check_vocabularies(self, vocabularies: dict[str, list[str]] | None = None) -> None:
        """The vocabularies inside the file (`vocabularies`, {"words": .., "chars": ..}, else read
        from the Keras graph's lookups) are the ones it was trained with (a tagger assembled from two
        trainings' parts would tag on silently, and badly)."""
        if not self.identity:  # saved before taggers knew themselves
            return
        for part, layer in (("words", "word_lookup"), ("chars", "char_lookup")):
            recorded = self.identity[f"{part}_sha256"]
            if recorded is None:
                continue
            inside = list_digest(vocabularies[part] if vocabularies else  # after padding and OOV:
                                 self.model.get_layer("token_encoder").get_layer(layer).get_vocabulary()[2:])
            if inside != recorded:
                raise PipelineError(f"{self.source}: its {part} vocabulary (sha256 {inside[:12]}) is not the one it "
                                    f"was trained with (sha256 {recorded[:12]}): the file mixes two taggers' parts; "
                                    "train it again (dvc repro)")

    def check_trained_as(self, summary: dict, summary_file: Path) -> None:
        """The tagger is the training its folder's summary.json describes (not another one's file)."""
        if not self.identity or "fingerprint" not in summary:
            return
        if self.identity["fingerprint"] != summary["fingerprint"]:
            raise PipelineError(
                f"{self.source}: trained as {self.identity['model']} (fingerprint {self.identity['fingerprint'][:12]}), "
                f"but {summary_file} describes {summary.get('model')} seed {summary.get('seed')} (fingerprint "
                f"{summary['fingerprint'][:12]}): the folder holds another training's tagger; train it again "
                "(dvc repro) or restore the folder (dvc checkout)")

    def tag_tokens(self, sentences: list[list[str]], batch_size: int = 256) -> list[list[str]]:
        """Tags for pre-tokenized sentences: every token of every sentence (no truncation), in
        batches of sentences of similar length; an empty sentence gets no tags.

        Memory is bounded whatever the input: a sentence longer than WINDOW tokens is tagged in
        consecutive windows of WINDOW tokens (each on its own, so an entity cut by a window's edge
        may lose its boundary; CoNLL-2003's longest sentence has 124 tokens), and no call of the
        network holds more than MAX_BATCH_TOKENS padded tokens (about 9 KB each)."""
        if batch_size < 1:
            raise PipelineError(f"batch size must be at least 1, got {batch_size}")
        pieces = [(i, start, sentence[start : start + WINDOW]) for i, sentence in enumerate(sentences)
                  for start in range(0, len(sentence), WINDOW)]
        pieces.sort(key=lambda piece: len(piece[2]))  # stable: sentences of one length keep their order
        windows: dict[tuple[int, int], list[str]] = {}
        for batch in token_bounded_batches(pieces, batch_size):
            tags = self.tag_batch([tokens for _, _, tokens in batch])
            for (i, start, _), piece_tags in zip(batch, tags):
                windows[i, start] = piece_tags
        return [[tag for start in range(0, len(sentence), WINDOW) for tag in windows[i, start]]
                for i, sentence in enumerate(sentences)]

    def tag_batch(self, sentences: list[list[str]]) -> list[list[str]]:
        """One call of the network: tags for a batch of non-empty sentences."""
        if self.forward:
            return self.forward.tag(sentences)
        from pipeline.model.network import pad_batch
        tags = self.model.predict_on_batch(pad_batch(sentences))
        return [[tag.decode("utf-8") for tag in row[: len(tokens)]] for row, tokens in zip(tags, sentences)]

    def tag(self, texts: list[str], batch_size: int = 256) -> list[TaggedSentence]:
        """Tokenize and tag raw texts (one sentence or paragraph each). A text with nothing to tag
        comes back with `skipped` set, so one bad line never hides the others."""
        if isinstance(texts, str):
            raise TypeError("Tagger.tag takes a list of texts; wrap a single text in a list")
        tokenized = [tokenize(text) for text in texts]
        all_tags = self.tag_tokens([tokens for tokens, _ in tokenized], batch_size)
        results = []
        for text, (tokens, spans), tags in zip(texts, tokenized, all_tags):
            if not tokens:
                results.append(TaggedSentence(text, [], [], skipped="empty or whitespace-only text"))
            else:
                results.append(TaggedSentence(text, tokens, tags, entities_of(text, tokens, spans, tags)))
        return results

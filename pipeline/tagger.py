"""The Python API: tag raw text with a trained tagger.

    from pipeline import Tagger
    Tagger.load("models/char_cnn").tag(["Peter lives in Berlin ."])

`Tagger.load` takes a model folder (models/<name>, models/<name>/seed_<n>, or any folder with a
tagger.keras) or an MLflow model URI (`runs:/<id>/tagger`, `models:/ner-char-cnn/1`, ...).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from seqeval.metrics.sequence_labeling import get_entities

from pipeline.errors import PipelineError
from pipeline.tokenize import tokenize

TAGGER_FILE = "tagger.keras"  # what pipeline.train writes in each seed folder


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


def find_tagger_file(path: Path) -> Path:
    """The tagger.keras of a model folder; for models/<name> with one folder per seed, the seed
    with the best dev F1."""
    if (path / TAGGER_FILE).is_file():
        return path / TAGGER_FILE
    seeds = sorted(path.glob(f"seed_*/{TAGGER_FILE}"))
    if seeds:
        def best_dev_f1(tagger_file: Path) -> float:
            try:
                return json.loads((tagger_file.parent / "summary.json").read_text())["best_dev_f1"]
            except (OSError, ValueError, KeyError):
                return float("-inf")
        return max(seeds, key=best_dev_f1)
    found = sorted(path.rglob(TAGGER_FILE))  # an MLflow model's artifacts folder
    if found:
        return found[0]
    raise PipelineError(f"{path}: not a trained model folder (no {TAGGER_FILE} in it or in seed_*/)")


class Tagger:
    def __init__(self, keras_tagger, source: str = ""):
        self.model = keras_tagger
        self.source = source
        self.tags: list[str] = list(keras_tagger.get_layer("tag_decoder").tags)

    @classmethod
    def load(cls, location: str | Path) -> "Tagger":
        location = str(location)
        path = Path(location)
        if not path.exists() and ":" in location:  # an MLflow model URI
            import mlflow

            from pipeline.tracking import tracking_uri
            mlflow.set_tracking_uri(tracking_uri())  # the project's store, as the stages use it
            try:
                path = Path(mlflow.artifacts.download_artifacts(location))
            except Exception as error:  # MLflow raises several types for bad or missing URIs
                raise PipelineError(f"{location}: cannot load the MLflow model ({error})") from None
        elif not path.exists():
            raise PipelineError(f"{location}: no such model folder")
        return cls.from_file(find_tagger_file(path))

    @classmethod
    def from_file(cls, tagger_file: str | Path) -> "Tagger":
        import keras

        from pipeline import model as _custom_layers  # noqa: F401  (registers the custom layers)
        try:
            return cls(keras.saving.load_model(tagger_file), str(tagger_file))
        except (OSError, ValueError) as error:
            raise PipelineError(f"{tagger_file}: not a trained tagger ({error})") from None

    def tag_tokens(self, sentences: list[list[str]], batch_size: int = 256) -> list[list[str]]:
        """Tags for pre-tokenized sentences (every token of every sentence, batched by length)."""
        from pipeline.model import tag_sentences
        non_empty = [i for i, tokens in enumerate(sentences) if tokens]
        tagged = tag_sentences(self.model, [sentences[i] for i in non_empty], batch_size) if non_empty else []
        result: list[list[str]] = [[] for _ in sentences]
        for i, tags in zip(non_empty, tagged):
            result[i] = tags
        return result

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

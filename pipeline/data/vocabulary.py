"""The vocabularies: how the `vocab` and `char_vocab` stages build them from train, the files
they write, and the one way later stages (training, the benchmark) read them back."""
from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.corpus import Sentence
from pipeline.data.lexicon import normalize
from pipeline.errors import PipelineError
from pipeline.files import write_bytes_atomic, write_text_atomic
from pipeline.layout import CHARS_FILE, TAGS_FILE, VECTORS_FILE, WORDS_FILE

if TYPE_CHECKING:  # the data layer sits below params: it reads their fields, never imports them
    from pipeline.params import CharVocabParams, VocabParams


@dataclass
class Vocabulary:
    words: list[str]
    chars: list[str]
    tags: list[str]
    word_vectors: np.ndarray | None  # one row per word (NaN: no pretrained vector); None without vectors


def build_word_vocab(train: list[Sentence], params: VocabParams, pretrained: list[str] | None = None) -> list[str]:
    """Words seen at least `min_count` times in train, most frequent first (ties alphabetical).

    With `pretrained` words (most frequent first): train words that have a vector are kept whatever
    their count, then the first `params.pretrained_words` of them that train lacks are appended.
    """
    counts = Counter(normalize(token, params.lowercase) for s in train for token in s.tokens)
    has_vector = set(pretrained or ())
    kept = [word for word, count in counts.items() if count >= params.min_count or word in has_vector]
    words = sorted(kept, key=lambda word: (-counts[word], word))
    if pretrained:
        words += [word for word in pretrained[: params.pretrained_words] if word not in counts]
    return words


def build_tag_list(train: list[Sentence]) -> list[str]:
    """Train's tags, "O" first, then by entity type and prefix, so the order is stable."""
    tags = {tag for s in train for tag in s.tags}
    return sorted(tags, key=lambda tag: (tag != "O", tag[2:], tag[:1]))


def build_char_vocab(train: list[Sentence], params: CharVocabParams) -> list[str]:
    """Characters seen at least `min_count` times in train tokens, most frequent first."""
    counts = Counter(char for s in train for token in s.tokens for char in token)
    kept = [char for char, count in counts.items() if count >= params.min_count]
    return sorted(kept, key=lambda char: (-counts[char], char))


def write_list(path: Path, items: list[str]) -> None:
    write_text_atomic(path, "".join(f"{item}\n" for item in items))


def read_list(path: str | Path) -> list[str]:
    """One item per line; split on "\\n" only, since tokens may hold other Unicode line breaks."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found (run `dvc repro` to build it)") from None
    items = text.split("\n")[:-1]
    if not items:
        raise PipelineError(f"{path}: empty")
    return items


def write_vectors(path: Path, matrix: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, matrix)
    write_bytes_atomic(path, buffer.getvalue())


def read_vectors(path: str | Path, n_words: int, dim: int) -> np.ndarray:
    """The vocabulary's pretrained vectors (NaN rows: none), checked against words.txt and word_dim."""
    try:
        matrix = np.load(path)
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found (run `dvc repro` to build it)") from None
    except ValueError as error:
        raise PipelineError(f"{path}: not a numpy array file ({error})") from None
    if matrix.shape != (n_words, dim):
        raise PipelineError(f"{path}: shape {matrix.shape}, expected ({n_words}, {dim}) for words.txt and "
                            "model.word_dim (run `dvc repro` to rebuild it)")
    return matrix


def trained_word_count(words: list[str], train: list[Sentence], lowercase: bool) -> int:
    """How many words at the head of `words` occur in train: the vocab stage lists train's words
    first and appends pretrained words that train lacks, which training never updates."""
    seen = {normalize(token, lowercase) for s in train for token in s.tokens}
    return next((i for i, word in enumerate(words) if word not in seen), len(words))


def frozen_word_rows(word_vectors: np.ndarray, trained_words: int) -> np.ndarray:
    """The frozen part of the word table that word_embedding builds from `word_vectors` (a word
    without a vector: zeros), as a tagger stores it (float16): the same for every tagger trained on
    the same data and vocabulary."""
    rows = word_vectors[trained_words:]
    return np.where(np.isfinite(rows).all(axis=1, keepdims=True), rows, 0).astype(np.float16)


def load_vocabulary(word_vectors: str, word_dim: int) -> Vocabulary:
    words = read_list(WORDS_FILE)
    vectors = read_vectors(VECTORS_FILE, len(words), word_dim) if word_vectors != "none" else None
    return Vocabulary(words, read_list(CHARS_FILE), read_list(TAGS_FILE), vectors)

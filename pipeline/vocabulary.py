"""The vocabulary files the `vocab` and `char_vocab` stages write, and the one way later stages
(training, the benchmark) read them back."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.corpus import Sentence
from pipeline.errors import PipelineError
from pipeline.files import write_bytes_atomic, write_text_atomic
from pipeline.layout import CHARS_FILE, TAGS_FILE, VECTORS_FILE, WORDS_FILE
from pipeline.lexicon import normalize


@dataclass
class Vocabulary:
    words: list[str]
    chars: list[str]
    tags: list[str]
    word_vectors: np.ndarray | None  # one row per word (NaN: no pretrained vector); None without vectors


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


def load_vocabulary(word_vectors: str, word_dim: int) -> Vocabulary:
    words = read_list(WORDS_FILE)
    vectors = read_vectors(VECTORS_FILE, len(words), word_dim) if word_vectors != "none" else None
    return Vocabulary(words, read_list(CHARS_FILE), read_list(TAGS_FILE), vectors)

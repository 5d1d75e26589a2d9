"""Reading and writing CoNLL-style column files.

Any whitespace-separated column format works: the first column is the token, the last
column is the NER tag (IOB1 or IOB2, as in CoNLL-2003), blank lines separate sentences,
and `-DOCSTART-` lines separate documents.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError

RAW_DIR = Path("data/raw")
TAG_PATTERN = re.compile(r"^(O|[BI]-\S+)$")
DOCSTART = "-DOCSTART-"


@dataclass(frozen=True)
class Sentence:
    tokens: list[str]
    tags: list[str]
    line: int  # 1-based line number of the sentence's first token, for error messages


def parse_conll(text_lines: list[bytes], path: str) -> list[Sentence]:
    """Parse the raw lines of a CoNLL file; raise PipelineError naming `path:line` on malformed input."""
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start_line = 0
    n_columns = None

    def close_sentence():
        nonlocal tokens, tags
        if tokens:
            sentences.append(Sentence(tokens, tags, start_line))
        tokens, tags = [], []

    for number, raw in enumerate(text_lines, start=1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as error:
            raise PipelineError(f"{path}:{number}: not valid UTF-8 ({error.reason} at byte {error.start})") from None
        if not line.strip():
            close_sentence()
            continue
        if line[0].isspace():
            raise PipelineError(f"{path}:{number}: empty token (the line starts with whitespace): {line!r}")
        columns = line.split()
        if columns[0] == DOCSTART:
            close_sentence()
            continue
        if len(columns) < 2:
            raise PipelineError(f"{path}:{number}: expected at least 2 columns (token ... tag), found 1: {line!r}")
        if n_columns is None:
            n_columns = len(columns)
        elif len(columns) != n_columns:
            raise PipelineError(
                f"{path}:{number}: expected {n_columns} columns like the lines before, found {len(columns)}: {line!r}"
            )
        tag = columns[-1]
        if not TAG_PATTERN.match(tag):
            raise PipelineError(f"{path}:{number}: unknown tag {tag!r} (expected O, B-TYPE or I-TYPE)")
        if not tokens:
            start_line = number
        tokens.append(columns[0])
        tags.append(tag)
    close_sentence()
    if not sentences:
        raise PipelineError(f"{path}: no sentences found (empty split)")
    return sentences


def read_conll(path: str | os.PathLike, limit: int | None = None, name: str | None = None) -> list[Sentence]:
    """Read a CoNLL file; `limit` keeps only its first N sentences; messages call the file `name` if given."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found") from None
    except OSError as error:
        raise PipelineError(f"{path}: cannot read ({error.strerror})") from None
    sentences = parse_conll(data.splitlines(keepends=True), name or str(path))
    return sentences[:limit] if limit else sentences


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def split_path(split: str) -> Path:
    return RAW_DIR / f"{split}.txt"


def available_splits(splits: tuple[str, ...]) -> list[str]:
    """The splits the download stage wrote (a custom dataset may have no test_pp)."""
    return [split for split in splits if split_path(split).exists()]


def load_split(split: str, limit: int | None = None) -> list[Sentence]:
    return read_conll(split_path(split), limit)


def check_known_tags(sentences: list[Sentence], known: set[str], path: str) -> None:
    """Stop at the first tag the model was not trained on, naming the file and line."""
    for sentence in sentences:
        for offset, tag in enumerate(sentence.tags):
            if tag not in known:
                raise PipelineError(f"{path}:{sentence.line + offset}: tag {tag!r} does not occur in train "
                                    f"(known: {', '.join(sorted(known))})")

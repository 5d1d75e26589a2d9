"""Stage `vocab`: word vocabulary and tag list from train only -> data/vocab/."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pipeline.conll import Sentence, available_splits, check_known_tags, load_split, split_path, write_text_atomic
from pipeline.errors import PipelineError, exits_cleanly
from pipeline.params import SPLITS, VocabParams, load_params

VOCAB_DIR = Path("data/vocab")
WORDS_FILE = VOCAB_DIR / "words.txt"
TAGS_FILE = VOCAB_DIR / "tags.txt"
STATS_FILE = VOCAB_DIR / "vocab_stats.json"


def normalize(token: str, lowercase: bool) -> str:
    return token.lower() if lowercase else token


def build_word_vocab(train: list[Sentence], params: VocabParams) -> list[str]:
    """Words seen at least `min_count` times in train, most frequent first (ties alphabetical)."""
    counts = Counter(normalize(token, params.lowercase) for s in train for token in s.tokens)
    kept = [word for word, count in counts.items() if count >= params.min_count]
    return sorted(kept, key=lambda word: (-counts[word], word))


def build_tag_list(train: list[Sentence]) -> list[str]:
    """Train's tags, "O" first, then by entity type and prefix, so the order is stable."""
    tags = {tag for s in train for tag in s.tags}
    return sorted(tags, key=lambda tag: (tag != "O", tag[2:], tag[:1]))


def oov_rate(sentences: list[Sentence], vocab: set[str], lowercase: bool) -> float:
    tokens = [normalize(token, lowercase) for s in sentences for token in s.tokens]
    return sum(token not in vocab for token in tokens) / len(tokens)


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


@exits_cleanly
def main() -> None:
    params = load_params()
    limit = params.data.limit
    train = load_split("train", limit)
    words = build_word_vocab(train, params.vocab)
    tags = build_tag_list(train)
    stats = {"words": len(words), "tags": len(tags), "train_sentences": len(train),
             "train_tokens": sum(len(s.tokens) for s in train), "oov_rate": {}}
    vocab = set(words)
    for split in available_splits(SPLITS[1:]):
        sentences = load_split(split, limit)
        check_known_tags(sentences, set(tags), str(split_path(split)))
        stats["oov_rate"][split] = round(oov_rate(sentences, vocab, params.vocab.lowercase), 6)
    write_list(WORDS_FILE, words)
    write_list(TAGS_FILE, tags)
    write_text_atomic(STATS_FILE, json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats))


if __name__ == "__main__":
    main()

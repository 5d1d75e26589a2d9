"""Stage `char_vocab`: character vocabulary from train only -> data/vocab/chars.txt."""
from __future__ import annotations

import json
from collections import Counter

from pipeline.conll import Sentence, load_split, write_text_atomic
from pipeline.errors import exits_cleanly
from pipeline.params import CharVocabParams, load_params
from pipeline.vocab import VOCAB_DIR, write_list

CHARS_FILE = VOCAB_DIR / "chars.txt"
STATS_FILE = VOCAB_DIR / "char_stats.json"


def build_char_vocab(train: list[Sentence], params: CharVocabParams) -> list[str]:
    """Characters seen at least `min_count` times in train tokens, most frequent first."""
    counts = Counter(char for s in train for token in s.tokens for char in token)
    kept = [char for char, count in counts.items() if count >= params.min_count]
    return sorted(kept, key=lambda char: (-counts[char], char))


@exits_cleanly
def main() -> None:
    params = load_params()
    train = load_split("train", params.data.limit)
    chars = build_char_vocab(train, params.char_vocab)
    lengths = [len(token) for s in train for token in s.tokens]
    stats = {"chars": len(chars), "max_word_length": params.char_vocab.max_word_length,
             "train_tokens_truncated": sum(length > params.char_vocab.max_word_length for length in lengths),
             "longest_train_token": max(lengths)}
    write_list(CHARS_FILE, chars)
    write_text_atomic(STATS_FILE, json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats))


if __name__ == "__main__":
    main()

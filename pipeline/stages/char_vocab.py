"""Stage `char_vocab`: character vocabulary from train only -> data/vocab/chars.txt."""
from __future__ import annotations

from pipeline.stages.arguments import parse_stage_args

if __name__ == "__main__":  # --help, or an argument it does not take, answered before the imports below
    parse_stage_args("char_vocab")

import json

from pipeline.data.corpus import read_split
from pipeline.data.vocabulary import build_char_vocab, write_list
from pipeline.errors import exits_cleanly
from pipeline.files import all_or_none, write_json_atomic
from pipeline.layout import CHAR_STATS_FILE, CHARS_FILE
from pipeline.params import load_params


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parse_stage_args("char_vocab", argv)
    params = load_params()
    train = read_split("train")
    chars = build_char_vocab(train, params.char_vocab)
    lengths = [len(token) for s in train for token in s.tokens]
    stats = {"chars": len(chars), "max_word_length": params.char_vocab.max_word_length,
             "train_tokens_truncated": sum(length > params.char_vocab.max_word_length for length in lengths),
             "longest_train_token": max(lengths)}
    with all_or_none():
        write_list(CHARS_FILE, chars)
        write_json_atomic(CHAR_STATS_FILE, stats)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()

"""Raw text -> tokens the way CoNLL-2003 (Reuters, Penn Treebank conventions) is tokenized,
with each token's character span in the original text.

Punctuation is split off; clitics are their own tokens (`John 's`, `does n't`, `they 're`);
hyphenated words, numbers (`1,000`, `3.5`, `1996-08-22`, `+44`, `.500`), currencies (`C$`),
abbreviations with periods (`U.S.`, `a.m.`, `J.`, `Inc.`, `vs.`) and a list number at the start
of a line (`1.`) stay whole; quotes stay `"`.

What people see as one character stays one token: an emoji sequence joined by U+200D, a flag,
a skin-tone modifier (an extended grapheme cluster, `\\X` of the `regex` library). Invisible
format characters (zero-width spaces, direction marks and overrides, the byte-order mark: Unicode
category Cf) are never tokens; the zero-width (non-)joiners inside a word stay in it.

Why not a library: NLTK's Treebank tokenizer rewrites `"` as two-character quotes (CoNLL keeps
`"`) and splits periods inside a paragraph only with downloaded Punkt models; spaCy splits
hyphenated words that CoNLL keeps whole. A regular expression with spans does the job and is
checked against CoNLL-2003's own training text in the tests.
"""
from __future__ import annotations

import re
import sys
import unicodedata

import regex

ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Jr", "Sr", "Inc", "Co", "Corp", "Ltd", "Bros", "Gen",
                 "Gov", "Sen", "Rep", "Rev", "Lt", "Col", "Capt", "Sgt", "No", "vs", "Jan", "Feb", "Mar", "Apr",
                 "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec", "Calif", "Fla", "Mass", "Penn", "vol")


def _joiner_ranges() -> str:
    """A regex class body for the characters that belong to the letter before them although
    Python's \\w does not match them: combining marks (decomposed accents as in "Mu\\u0308ller",
    Arabic vowel signs, Devanagari virama) and the zero-width (non-)joiners."""
    codes = [code for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code))[0] == "M"
             and not chr(code).isalnum()] + [0x200C, 0x200D]
    ranges, start, previous = [], codes[0], codes[0]
    for code in codes[1:] + [-1]:
        if code != previous + 1:
            ranges.append(re.escape(chr(start)) + (f"-{re.escape(chr(previous))}" if previous > start else ""))
            start = code
        previous = code
    return "".join(ranges)


# a letter or digit, and the marks that extend the one before it
LETTER = r"[^\W_]"
IN_WORD = rf"(?:[^\W_]|[{_joiner_ranges()}])"
CLITIC_TAIL = rf"(?i:s|re|ve|ll|d|m|t)(?!{IN_WORD})"  # what follows the apostrophe of 's 're 've 'll 'd 'm n't

TOKEN = regex.compile(rf"""
      (?P<invisible>\p{{Cf}}+)                          # format characters: dropped, never tokens
    | \A\s*\d{{1,3}}\.(?=\s)                            # list number at the start of a line: "1. Ajax"
    | {LETTER}{IN_WORD}*?(?=(?i:n't)(?!{IN_WORD}))       # "do" of "don't", "ca" of "can't"
    | (?i:n)?'{CLITIC_TAIL}                             # n't 's 're 've 'll 'd 'm
    | (?:[^\W\d_]\.){{2,}}                              # U.S.  a.m.  m.p.h.
    | (?:{"|".join(ABBREVIATIONS)}|[A-Z])\.(?=\s|$)     # Inc.  vs.  initials: J.
    | [A-Z]{{1,2}}\$                                    # currencies: C$ A$ US$
    | [+]?\d+(?:[.,:/]\d+)+ | \+\d+ | \.\d+             # 1,000  3.5  12:30  +44  .500
    | {LETTER}{IN_WORD}*(?:(?:[-&]|'(?!{CLITIC_TAIL})){LETTER}{IN_WORD}*)*  # words, numbers: O'Brien AT&T 1996-08-22
    | \.{{2,}}|-{{2,}}                                  # ellipsis, dashes
    | (?=\S)\X                                          # any other character as people see it: punctuation,
                                                      # quotes, an emoji with its modifiers and joiners
""", regex.VERBOSE)


def tokenize(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Tokens of `text` and their (start, end) character offsets: text[start:end] == token."""
    tokens, spans = [], []
    for match in TOKEN.finditer(text):
        if match.group("invisible"):
            continue
        start = match.start() + len(match.group()) - len(match.group().lstrip())  # the list number's leading space
        tokens.append(text[start : match.end()])
        spans.append((start, match.end()))
    return tokens, spans

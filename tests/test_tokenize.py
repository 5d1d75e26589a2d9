import pytest

from pipeline.data.tokenize import tokenize


@pytest.mark.parametrize("text, tokens", [
    ('He said "no", then left.', ["He", "said", '"', "no", '"', ",", "then", "left", "."]),
    ("All-rounder Phil Simmons of AL-AIN", ["All-rounder", "Phil", "Simmons", "of", "AL-AIN"]),
    ("Won 2-1 on 1996-08-22, 1,000 fans, 3.5 pct, +44 171, .500 average, C$ 12",
     ["Won", "2-1", "on", "1996-08-22", ",", "1,000", "fans", ",", "3.5", "pct", ",", "+44", "171", ",", ".500",
      "average", ",", "C$", "12"]),
    ("The U.S. envoy met J. Smith of Acme Inc. at 10 a.m. in St. Louis vs. Kent.",
     ["The", "U.S.", "envoy", "met", "J.", "Smith", "of", "Acme", "Inc.", "at", "10", "a.m.", "in", "St.", "Louis",
      "vs.", "Kent", "."]),
    ("Peter's dog and the Smiths' house, O'Brien's car", ["Peter", "'s", "dog", "and", "the", "Smiths", "'", "house",
                                                         ",", "O'Brien", "'s", "car"]),
    ("They don't know, can't say and we're sure I'm right.",
     ["They", "do", "n't", "know", ",", "ca", "n't", "say", "and", "we", "'re", "sure", "I", "'m", "right", "."]),
    ("1. Jan Ullrich ( Germany ) 4:05:12", ["1.", "Jan", "Ullrich", "(", "Germany", ")", "4:05:12"]),
    ("Wait... no -- really?!", ["Wait", "...", "no", "--", "really", "?", "!"]),
    ("Zürich's FC São Paulo", ["Zürich", "'s", "FC", "São", "Paulo"]),
    ("   ", []),
    # decomposed accents, Arabic vowel signs, Devanagari virama and zero-width joiners stay inside their word
    ("Mu\u0308ller sagt", ["Mu\u0308ller", "sagt"]),
    ("\u0643\u064e\u062a\u064e\u0628\u064e \u0643\u062a\u0627\u0628", ["\u0643\u064e\u062a\u064e\u0628\u064e", "\u0643\u062a\u0627\u0628"]),
    ("\u0915\u094d\u0937\u0924\u094d\u0930\u093f\u092f \u0939\u0948", ["\u0915\u094d\u0937\u0924\u094d\u0930\u093f\u092f", "\u0939\u0948"]),
    ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 a\u200db", ["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "a\u200db"]),
    # what people see as one character is one token: emoji joined by U+200D, flags, skin tones
    ("\U0001F469\u200D\U0001F4BB codes", ["\U0001F469\u200D\U0001F4BB", "codes"]),
    ("\U0001F468\u200D\U0001F469\u200D\U0001F467!", ["\U0001F468\u200D\U0001F469\u200D\U0001F467", "!"]),
    ("Germany \U0001F1E9\U0001F1EA won", ["Germany", "\U0001F1E9\U0001F1EA", "won"]),
    ("ok \U0001F44D\U0001F3FD", ["ok", "\U0001F44D\U0001F3FD"]),
    # invisible format characters are no tokens: zero-width space, direction marks and overrides, BOM
    ("\ufeffPeter \u202eBerlin\u202c \u200b \u200e. \u2060", ["Peter", "Berlin", "."]),
])
def test_conll_style_tokenization(text, tokens):
    assert tokenize(text)[0] == tokens


def test_spans_map_back_to_the_original_text_around_dropped_format_characters():
    text = "\ufeff\u200bBerlin \U0001F1E9\U0001F1EA\u202c"
    tokens, spans = tokenize(text)
    assert tokens == ["Berlin", "\U0001F1E9\U0001F1EA"] and spans == [(2, 8), (9, 11)]


def test_spans_map_back_to_the_original_text():
    text = '  U.S. officials said "Peter\'s"  plan -- worth $ 1,000 -- was O\'Brien\'s.  '
    tokens, spans = tokenize(text)
    assert [text[start:end] for start, end in spans] == tokens
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_conll_2003_text_keeps_its_own_tokenization(real_train):
    """Re-tokenizing train's sentences (tokens joined by spaces) gives back the same tokens for
    98% of sentences; the rest are rare forms (U.S.-led, 3-1/2, Tel+44)."""
    same = sum(tokenize(" ".join(s.tokens))[0] == s.tokens for s in real_train)
    assert same / len(real_train) >= 0.98

"""The casing classes of Reimers & Gurevych (2017): the taggers' casing feature (the CasingIds
layer, pipeline/model/layers.py) and the breakdown's casing groups. The rule in Python, for what
reads taggers without TensorFlow (the forward pass, the evaluation)."""
from __future__ import annotations

import unicodedata

# id 0 is padding; ids follow this order from 1
CASINGS = ("numeric", "mainly_numeric", "all_lower", "all_upper", "initial_upper", "contains_digit", "other")


def casing_class(token: str) -> int:
    """The casing class id of a token (1-based in CASINGS), by the rules of the tagger's CasingIds
    layer, whose dozen TensorFlow string ops cost about 1 ms per call, most of a new sentence's
    latency. Unicode categories as RE2's \\p{Ll} and \\p{Lu}; tests/test_forward.py checks both on
    every token of CoNLL-2003 and on edge cases."""
    digits = sum(char in "0123456789" for char in token)
    if digits == len(token) and token:
        return 1  # numeric
    if 2 * digits > len(token):
        return 2  # mainly_numeric
    categories = [unicodedata.category(char) for char in token]
    if token and all(category == "Ll" for category in categories):
        return 3  # all_lower
    if token and all(category == "Lu" for category in categories):
        return 4  # all_upper
    if token and categories[0] == "Lu":
        return 5  # initial_upper
    return 6 if digits else 7  # contains_digit, other

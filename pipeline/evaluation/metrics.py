"""Scores as conlleval computes them, plus the paired bootstrap for the difference of two taggers.

Chunking uses seqeval's `get_entities`, a port of conlleval's chunk rules (an I- after O or
after another type starts an entity); only the counting is here, per sentence, so the
bootstrap can resample sentences. All scores are percentages, as conlleval prints them.
"""
from __future__ import annotations

import functools
import warnings
from collections import Counter

import numpy as np
from scipy import stats
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import balanced_accuracy_score

from pipeline.errors import PipelineError

Tags = list[list[str]]  # one list of tags per sentence


def prf(tp: float, n_pred: float, n_gold: float) -> tuple[float, float, float]:
    """Precision, recall, F1 in percent; 0 where undefined, as conlleval does."""
    precision = 100 * tp / n_pred if n_pred else 0.0
    recall = 100 * tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


Span = tuple[str, int, int]  # (type, first token, last token), as seqeval's get_entities gives it


@functools.lru_cache(maxsize=1 << 18)
def _spans(tags: tuple[str, ...]) -> frozenset[Span]:
    return frozenset(get_entities(list(tags)))


def entity_spans(tags: list[str]) -> frozenset[Span]:
    """The entities of one sentence's tags. Remembered: an evaluation asks for the same sentence's
    gold and its nine taggers' (mostly equal) tags several times each, and chunking is its costliest
    step."""
    return _spans(tuple(tags))


def entity_counts(gold: list[str], pred: list[str]) -> tuple[Counter, Counter, Counter]:
    """Per entity type: correct, predicted and gold entity counts for one sentence."""
    gold_entities, pred_entities = entity_spans(gold), entity_spans(pred)
    types = lambda entities: Counter(entity[0] for entity in entities)
    return types(gold_entities & pred_entities), types(pred_entities), types(gold_entities)


def sentence_counts(gold: Tags, pred: Tags) -> np.ndarray:
    """(n_sentences, 3) array of [correct, predicted, gold] entity counts, for the bootstrap."""
    spans = ((entity_spans(g), entity_spans(p)) for g, p in zip(gold, pred, strict=True))
    rows = [(len(g & p), len(p), len(g)) for g, p in spans]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def check_aligned(gold: Tags, pred: Tags) -> None:
    if len(gold) != len(pred):
        raise PipelineError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise PipelineError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")


def score(gold: Tags, pred: Tags) -> dict:
    """Entity-level micro P/R/F1 and per type (conlleval), token accuracy and macro accuracy.

    `macro_accuracy` is the mean over tag classes of the share of that class's tokens tagged
    correctly (the book chapter's per-class mean accuracy; = balanced accuracy).
    """
    check_aligned(gold, pred)
    correct, predicted, actual = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred):
        c, pr, ac = entity_counts(g, p)
        correct.update(c), predicted.update(pr), actual.update(ac)
    precision, recall, f1 = prf(sum(correct.values()), sum(predicted.values()), sum(actual.values()))
    per_type = {}
    for entity_type in sorted(set(actual) | set(predicted)):
        p, r, f = prf(correct[entity_type], predicted[entity_type], actual[entity_type])
        per_type[entity_type] = {"precision": p, "recall": r, "f1": f, "support": actual[entity_type]}
    gold_flat = [tag for tags in gold for tag in tags]
    pred_flat = [tag for tags in pred for tag in tags]
    accuracy = 100 * sum(g == p for g, p in zip(gold_flat, pred_flat)) / len(gold_flat)
    with warnings.catch_warnings():  # predicted tags absent from gold are expected on small splits
        warnings.simplefilter("ignore", UserWarning)
        macro_accuracy = 100 * balanced_accuracy_score(gold_flat, pred_flat)
    return {"f1": f1, "precision": precision, "recall": recall, "accuracy": accuracy,
            "macro_accuracy": macro_accuracy, "per_type": per_type}


def seed_stats(values: list[float]) -> dict:
    """Mean, sample standard deviation, min and max of a score over seeds."""
    values = np.asarray(values, dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"n": len(values), "mean": float(values.mean()), "std": std,
            "min": float(values.min()), "max": float(values.max())}


Counts = list[np.ndarray]  # one tagger's per-seed (n_sentences, 3) counts from `sentence_counts`


def _check_same_gold(counts_a: Counts, counts_b: Counts) -> None:
    if len(counts_a) != len(counts_b):
        raise PipelineError(f"{len(counts_a)} seeds for one tagger but {len(counts_b)} for the other")
    if any(not np.array_equal(a[:, 2], b[:, 2]) for a in counts_a for b in counts_b):
        raise PipelineError("the two taggers were scored on different gold sentences")


def _pair_arrays(pairs: list[tuple[Counts, Counts]]):
    """Pairs of per-seed counts on the same sentences -> correct_a, predicted_a, correct_b,
    predicted_b, each (pairs, seeds, sentences), and gold (pairs, sentences), as floats."""
    for counts_a, counts_b in pairs:
        _check_same_gold(counts_a, counts_b)
    stack = lambda counts: np.stack(counts).transpose(2, 0, 1).astype(float)  # (3, seeds, sentences)
    a = np.stack([stack(counts_a) for counts_a, _ in pairs])
    b = np.stack([stack(counts_b) for _, counts_b in pairs])
    return a[:, 0], a[:, 1], b[:, 0], b[:, 1], a[:, 2, 0]


def _mean_f1_gain(correct_a, predicted_a, correct_b, predicted_b, gold):
    """Mean over seeds of F1(b) - F1(a) from entity counts summed over sentences, shaped
    (..., seeds), and the gold count (...); F1 = 2c/(p+g)."""
    g = np.expand_dims(gold, -1)  # the same for every seed

    def f1(c, p):
        c, denominator = np.broadcast_arrays(200 * c, p + g)
        return np.divide(c, denominator, out=np.zeros(c.shape), where=denominator > 0)

    return (f1(correct_b, predicted_b) - f1(correct_a, predicted_a)).mean(-1)


def paired_bootstraps(pairs: list[tuple[Counts, Counts]], resamples: int, seed: int) -> list[dict]:
    """For each pair (counts_a, counts_b) on the same sentences: the mean over seeds of F1(b) - F1(a),
    and its 95% percentile interval from resampling sentences. Each resample draws sentences with
    replacement and scores both taggers (all seeds) on the same draw.

    Every pair sees the same draws (scipy's, from `seed`): the same figures as one bootstrap per
    pair, but computed at once, as matrix products of how often each sentence is drawn with the
    per-sentence counts. The counts are whole numbers, so every sum is exact in any order.
    """
    correct_a, predicted_a, correct_b, predicted_b, gold = _pair_arrays(pairs)
    sentences = gold.shape[-1]

    def statistic(draws, axis=-1):  # draws: (batch, sentences) sentence numbers
        draws = np.atleast_2d(draws)
        offsets = sentences * np.arange(len(draws))[:, None]
        weights = np.bincount((draws + offsets).ravel(), minlength=draws.size).reshape(draws.shape).astype(float)
        summed = lambda counts: np.moveaxis(counts @ weights.T, -1, -2)  # (pairs, batch, seeds)
        return _mean_f1_gain(summed(correct_a), summed(predicted_a), summed(correct_b), summed(predicted_b),
                             gold @ weights.T)  # (pairs, batch)

    deltas = _mean_f1_gain(correct_a.sum(-1), predicted_a.sum(-1), correct_b.sum(-1), predicted_b.sum(-1),
                           gold.sum(-1))
    # paired: scipy draws sentence numbers, the same for every count
    result = stats.bootstrap((np.arange(sentences),), statistic, paired=True, vectorized=True,
                             n_resamples=resamples, confidence_level=0.95, method="percentile", batch=50,
                             rng=np.random.default_rng(seed))
    low, high = np.atleast_1d(result.confidence_interval.low), np.atleast_1d(result.confidence_interval.high)
    return [{"f1": float(delta), "ci95": [float(l), float(h)]} for delta, l, h in zip(deltas, low, high)]


PERMUTATION_BATCH = 50  # scipy.stats.permutation_test's `batch`: its draws depend on it


def sentence_swaps(resamples: int, sentences: int, seed: int) -> np.ndarray:
    """(resamples, sentences) booleans, True where the resample swaps that sentence's outputs: the
    draws scipy.stats.permutation_test(permutation_type="samples", batch=PERMUTATION_BATCH,
    rng=np.random.default_rng(seed)) makes for one sample, without its Python loop over sentences.
    scipy permutes each sentence's pair (x, -x) with `rng.permuted`, batch after batch; permuting
    two items is one Fisher-Yates step, one uint32 of the generator (PCG64 gives the low half of
    each 64-bit output, then the high half), that swaps the pair when its lowest bit is 0.
    tests/test_metrics.py checks these against scipy's."""
    draws = -(-resamples // PERMUTATION_BATCH) * PERMUTATION_BATCH * sentences  # whole batches
    raw = np.random.default_rng(seed).bit_generator.random_raw(-(-draws // 2))
    words = np.stack([raw & 0xFFFFFFFF, raw >> 32], axis=1).ravel()[:draws]
    return ((words & 1) == 0).reshape(-1, sentences)[:resamples]


def randomization_tests(pairs: list[tuple[Counts, Counts]], resamples: int, seed: int) -> list[float]:
    """For each pair, the two-sided p-value of the mean F1 gain by approximate randomization
    (paired permutation).

    Under the null hypothesis the two taggers are exchangeable, so each sentence's outputs (for
    every seed at once) are swapped between them with probability 1/2. These are the swaps, and
    the p-value, of scipy's permutation_test (`sentence_swaps`): twice the smaller one-sided p,
    each +1 corrected, so 2/(resamples + 1) is the smallest it can report; with so few sentences
    that every swap can be enumerated (2^n <= resamples), scipy enumerates them. scipy runs a
    Python loop over the sentences for every batch of resamples (about 40 s for an evaluation of
    the default's breakdown); here every pair sees the same swaps at once, as matrix products (see
    paired_bootstraps).
    """
    correct_a, predicted_a, correct_b, predicted_b, gold = _pair_arrays(pairs)
    sentences = gold.shape[-1]

    def gains(swap):  # (batch, sentences) 0/1 -> (pairs, batch)
        def summed(counts, other):  # the counts with the swapped sentences' taken from `other`
            return np.moveaxis(counts.sum(-1, keepdims=True) + (other - counts) @ swap.T, -1, -2)

        return _mean_f1_gain(summed(correct_a, correct_b), summed(predicted_a, predicted_b),
                             summed(correct_b, correct_a), summed(predicted_b, predicted_a), gold.sum(-1, keepdims=True))

    if 2 ** sentences <= resamples:  # scipy enumerates every swap
        def statistic(signed, axis=-1):
            swap = (np.atleast_2d(np.moveaxis(signed, axis, -1)) < 0).astype(float)
            return gains(swap).T if signed.ndim > 1 else gains(swap)[:, 0]  # scipy wants the resamples first

        result = stats.permutation_test((np.arange(1, sentences + 1),), statistic, permutation_type="samples",
                                        vectorized=True, n_resamples=resamples, alternative="two-sided",
                                        batch=PERMUTATION_BATCH, rng=np.random.default_rng(seed))
        return [float(p) for p in np.atleast_1d(result.pvalue)]
    observed = gains(np.zeros((1, sentences)))  # (pairs, 1)
    swaps = sentence_swaps(resamples, sentences, seed)
    null = np.concatenate([gains(swaps[k:k + 500].astype(float)) for k in range(0, resamples, 500)], axis=1)
    # scipy's comparison: a tolerance for values that are equal in theory but not in floating point
    tolerance = np.abs(np.finfo(float).eps * 100 * observed)
    at_most = ((null <= observed + tolerance).sum(axis=1) + 1) / (resamples + 1)
    at_least = ((null >= observed - tolerance).sum(axis=1) + 1) / (resamples + 1)
    return [float(p) for p in np.clip(2 * np.minimum(at_most, at_least), 0, 1)]


def paired_bootstrap(counts_a: Counts, counts_b: Counts, resamples: int, seed: int) -> dict:
    """paired_bootstraps of one pair."""
    return paired_bootstraps([(counts_a, counts_b)], resamples, seed)[0]


def randomization_test(counts_a: Counts, counts_b: Counts, resamples: int, seed: int) -> float:
    """randomization_tests of one pair."""
    return randomization_tests([(counts_a, counts_b)], resamples, seed)[0]

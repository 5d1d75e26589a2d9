import numpy as np
import pytest
from seqeval.metrics import f1_score

from pipeline.errors import PipelineError
from pipeline.metrics import paired_bootstrap, randomization_test, score, seed_stats, sentence_counts


def f1_of(gold, pred):
    return score(gold, pred)["f1"]


# Hand-worked with conlleval's rules: an entity counts only if its type and both boundaries match.
def test_boundary_error_counts_as_one_false_positive_and_one_miss():
    result = score([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    assert (result["precision"], result["recall"], result["f1"]) == (0.0, 0.0, 0.0)


def test_type_error_is_wrong():
    assert f1_of([["B-PER", "I-PER"]], [["B-ORG", "I-ORG"]]) == 0.0


def test_i_after_o_starts_an_entity():
    assert f1_of([["O", "B-LOC", "I-LOC"]], [["O", "I-LOC", "I-LOC"]]) == 100.0


def test_type_change_inside_a_chunk_splits_it():
    # I-LOC after B-PER ends the PER entity and starts a LOC one
    assert f1_of([["B-PER", "B-LOC", "O"]], [["B-PER", "I-LOC", "O"]]) == 100.0


def test_entity_at_sentence_end_and_sentence_boundaries():
    # the second sentence's leading I-PER starts a new entity; it does not continue the first's
    gold = [["O", "B-PER", "I-PER"], ["I-PER", "O"]]
    assert f1_of(gold, [["O", "B-PER", "I-PER"], ["B-PER", "O"]]) == 100.0


def test_precision_recall_f1_and_per_type_on_a_mixed_case():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"]]  # 4 entities
    pred = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "B-PER", "B-MISC", "O"]]  # 5, of which 3 right
    result = score(gold, pred)
    assert result["precision"] == pytest.approx(60.0)
    assert result["recall"] == pytest.approx(75.0)
    assert result["f1"] == pytest.approx(2 * 60 * 75 / 135)
    assert result["per_type"]["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result["per_type"]["PER"]["precision"] == 50.0 and result["per_type"]["PER"]["support"] == 1
    assert result["accuracy"] == pytest.approx(100 * 6 / 8)
    # per-class token accuracy: B-PER 1, I-PER 1, O 1/2, B-LOC 1, B-ORG 1, B-MISC 1, I-MISC 0 -> mean 5.5/7
    assert result["macro_accuracy"] == pytest.approx(100 * 5.5 / 7)


def test_agrees_with_seqeval_on_real_data_with_noisy_predictions(real_dev):
    rng = np.random.default_rng(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    gold = [s.tags for s in real_dev]
    pred = [[tags[rng.integers(9)] if rng.random() < 0.1 else t for t in s] for s in gold]
    assert f1_of(gold, pred) == pytest.approx(100 * f1_score(gold, pred))
    assert f1_of(gold, gold) == 100.0


def test_misaligned_predictions_are_refused():
    with pytest.raises(PipelineError, match="sentence 0: 2 gold tags but 1 predicted"):
        score([["O", "O"]], [["O"]])


def test_bootstrap_of_identical_taggers_is_zero():
    counts = sentence_counts([["B-PER", "O"], ["B-LOC"]], [["B-PER", "O"], ["O"]])
    assert paired_bootstrap([counts], [counts], 1000, seed=1) == {"f1": 0.0, "ci95": [0.0, 0.0]}
    assert randomization_test([counts], [counts], 1000, seed=1) == 1.0


# Two sentences with one entity each. A misses sentence 1, B gets both.
GOLD = [["B-PER"], ["B-LOC"]]
A_COUNTS = sentence_counts(GOLD, [["B-ORG"], ["B-LOC"]])
B_COUNTS = sentence_counts(GOLD, GOLD)


def test_bootstrap_interval_hand_computed():
    # Resampling two sentences gives {1,1}: F1 0 vs 100 (+100), {1,2}: 50 vs 100 (+50), {2,2}: +0,
    # with probabilities 1/4, 1/2, 1/4, so the 2.5% and 97.5% percentiles are 0 and 100.
    result = paired_bootstrap([A_COUNTS], [B_COUNTS], 2000, seed=0)
    assert result["f1"] == pytest.approx(50.0)
    assert result["ci95"] == pytest.approx([0.0, 100.0])
    assert paired_bootstrap([A_COUNTS], [B_COUNTS], 2000, seed=0) == result  # seeded: the same interval again


def test_bootstrap_pools_seeds_on_the_same_sentence_draws():
    # seed 1 as above (+100/+50/+0 per draw), seed 2 identical taggers (+0): the mean gain halves
    result = paired_bootstrap([A_COUNTS, B_COUNTS], [B_COUNTS, B_COUNTS], 2000, seed=0)
    assert result["f1"] == pytest.approx(25.0)
    assert result["ci95"] == pytest.approx([0.0, 50.0])


def test_randomization_test_hand_computed():
    # Three one-entity sentences, A misses all, B gets all: observed gain +100. Swapping k
    # sentences gives 100 * (3 - 2k) / 3, so |gain| >= 100 only for k = 0 or 3: p = 2/8 exactly
    # (scipy enumerates all 8 swaps when resamples exceed them).
    gold = [["B-PER"], ["B-LOC"], ["B-ORG"]]
    a, b = sentence_counts(gold, [["O"], ["O"], ["O"]]), sentence_counts(gold, gold)
    assert randomization_test([a], [b], 2000, seed=0) == pytest.approx(0.25)
    assert randomization_test([b], [a], 2000, seed=0) == pytest.approx(0.25)  # two-sided
    # with two sentences every swap pattern keeps |gain| = 50: no evidence at all
    assert randomization_test([A_COUNTS], [B_COUNTS], 2000, seed=0) == pytest.approx(1.0)


def test_a_real_difference_on_real_data_is_significant(real_dev):
    rng = np.random.default_rng(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    gold = [s.tags for s in real_dev]
    noisy = lambda rate: [[tags[rng.integers(9)] if rng.random() < rate else t for t in s] for s in gold]
    worse = [sentence_counts(gold, noisy(0.10)) for _ in range(2)]
    better = [sentence_counts(gold, noisy(0.08)) for _ in range(2)]
    gain = paired_bootstrap(worse, better, 1000, seed=0)
    assert 0 < gain["ci95"][0] < gain["f1"] < gain["ci95"][1]
    assert randomization_test(worse, better, 1000, seed=0) < 0.01


def test_seed_stats():
    assert seed_stats([80.0, 82.0, 84.0]) == {"n": 3, "mean": 82.0, "std": 2.0, "min": 80.0, "max": 84.0}
    assert seed_stats([80.0])["std"] == 0.0


def test_bootstrap_needs_the_same_gold():
    a = sentence_counts([["B-PER"]], [["B-PER"]])
    b = sentence_counts([["O"]], [["O"]])
    with pytest.raises(PipelineError, match="different gold sentences"):
        paired_bootstrap([a], [b], 1000, seed=0)

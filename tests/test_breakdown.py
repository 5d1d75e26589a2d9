"""The gain breakdown on sentences small enough to work out by hand."""
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.corpus import Sentence
from pipeline.data.lexicon import Lexicon
from pipeline.evaluation.breakdown import EntityGroups, break_down, entity_sets, group_counts, token_casings
from pipeline.evaluation.report import examples_markdown
from pipeline.evaluation.scoring import Evaluation
from pipeline.model.trained import TrainedRun
from pipeline.params import EvaluateParams

# train has "peter" (no vector); "london" has a vector but is not in train; "zorbl", "bridge": neither
LEXICON = Lexicon(train_words=frozenset({"peter", "lives", "in", "berlin", "."}),
                  embedded_words=frozenset({"lives", "in", "berlin", "london", "visited", "."}),
                  lowercase=True, has_vectors=True)
SENTENCES = [Sentence("Peter lives in Berlin .".split(), ["B-PER", "O", "O", "B-LOC", "O"], 1),
             Sentence("Zorbl visited London Bridge .".split(), ["B-PER", "O", "B-LOC", "I-LOC", "O"], 7)]
GOLD = [s.tags for s in SENTENCES]
# right: Peter, Zorbl; wrong: Berlin tagged ORG, only "London" of "London Bridge" found
PREDICTED = [["B-PER", "O", "O", "B-ORG", "O"], ["B-PER", "O", "B-LOC", "O", "O"]]


@pytest.mark.parametrize("tokens, category", [
    (["Berlin"], "IV"), (["London"], "OOTV"), (["Peter"], "OOEV"), (["Zorbl"], "OOBV"),
    (["Berlin", "London"], "OOTV"),  # one word out of train, every word with a vector
    (["Peter", "Berlin"], "OOEV"),  # every word in train, one without a vector
    (["Peter", "London"], "OOBV"),  # out of train and out of the vectors, by different words
])
def test_word_categories_follow_ma_and_hovy(tokens, category):
    assert LEXICON.category(tokens) == category


def test_lexicon_of_a_run_reads_train_words_and_the_vector_rows():
    vectors = np.array([[0.1, 0.2], [np.nan, np.nan], [0.3, 0.4]], dtype=np.float32)
    lexicon = Lexicon.of_run(SENTENCES[:1], ["berlin", "peter", "london"], vectors, lowercase=True)
    assert lexicon.embedded_words == {"berlin", "london"}
    assert lexicon.train_words == {"peter", "lives", "in", "berlin", "."}
    assert [lexicon.category([w]) for w in ("BERLIN", "london", "Peter")] == ["IV", "OOTV", "OOEV"]


def test_without_word_vectors_only_the_out_of_embedding_groups_exist():
    lexicon = Lexicon.of_run(SENTENCES, ["peter", "berlin"], None, lowercase=True)
    assert lexicon.possible_categories == ("OOEV", "OOBV")
    assert lexicon.category(["Berlin"]) == "OOEV" and lexicon.category(["Paris"]) == "OOBV"


def test_casing_classes_are_the_taggers_own():
    sentence = Sentence(["Peter", "USA", "2003", "iPhone", "x1", "lives", "12-3"], ["O"] * 7, 1)
    assert token_casings([sentence]) == [["initial_upper", "all_upper", "numeric", "other", "contains_digit",
                                          "all_lower", "mainly_numeric"]]


def f1(counts):
    correct, predicted, gold = counts.sum(axis=0)
    return 200 * correct / (predicted + gold)


def test_group_counts_score_each_entity_in_the_groups_of_its_own_span():
    counts = group_counts(entity_sets(GOLD), entity_sets(PREDICTED), EntityGroups(SENTENCES, LEXICON))
    # [correct, predicted, gold] per sentence
    assert counts["category", "IV"].tolist() == [[0, 1, 1], [0, 0, 0]]  # Berlin: found, but as ORG
    assert counts["category", "OOEV"].tolist() == [[1, 1, 1], [0, 0, 0]]  # Peter
    assert counts["category", "OOBV"].tolist() == [[0, 0, 0], [1, 1, 2]]  # Zorbl right, London Bridge missed
    assert counts["category", "OOTV"].tolist() == [[0, 0, 0], [0, 1, 0]]  # the false positive "London"
    assert f1(counts["category", "OOBV"]) == pytest.approx(200 / 3)
    assert f1(counts["type", "PER"]) == 100 and f1(counts["type", "LOC"]) == 0
    assert counts["type", "ORG"].sum(axis=0).tolist() == [0, 1, 0]
    assert f1(counts["length", "1"]) == pytest.approx(400 / 7)  # 2 right of 4 predicted and 3 gold
    assert counts["length", "2"].sum(axis=0).tolist() == [0, 0, 1]
    assert counts["casing", "initial_upper"].sum(axis=0).tolist() == [2, 4, 4]


def fake_evaluation(predicted_a, predicted_b, seeds=(1, 2)):
    runs = {name: [TrainedRun(name, seed, Path("."), {}, []) for seed in seeds] for name in ("baseline", "char_cnn")}
    predicted = {("test", name, seed): tags for seed in seeds
                 for name, tags in (("baseline", predicted_a), ("char_cnn", predicted_b))}
    return Evaluation(runs, [("baseline", "char_cnn")], ["test"], [], {"test": GOLD}, predicted, {}, {})


def test_break_down_gives_the_gain_per_group_and_the_gained_entities():
    params = EvaluateParams(bootstrap_resamples=1000, permutation_resamples=1000, seed=42, batch_size=8)
    result = break_down(fake_evaluation(PREDICTED, GOLD), {"test": SENTENCES}, LEXICON, params)
    by_category = result.metrics["test"]["category"]
    assert list(by_category) == ["IV", "OOEV", "OOBV"]  # groups with gold entities, in Ma & Hovy's order
    assert by_category["OOBV"]["entities"] == 2
    assert by_category["OOBV"]["f1"] == pytest.approx({"baseline": 200 / 3, "char_cnn": 100})
    gain = by_category["OOBV"]["gains"]["baseline_vs_char_cnn"]
    assert gain["f1"] == pytest.approx(100 / 3)
    assert set(gain) == {"f1", "ci95", "p_value"}
    assert gain["ci95"][0] <= gain["f1"] <= gain["ci95"][1] and 0 < gain["p_value"] <= 1
    assert by_category["OOEV"]["gains"]["baseline_vs_char_cnn"]["f1"] == 0
    assert list(result.metrics["test"]["length"]) == ["1", "2"]
    examples = result.examples["baseline_vs_char_cnn"]
    assert (examples["gained_total"], examples["lost_total"]) == (2, 0)
    berlin, london_bridge = examples["gained"]
    assert berlin["gold"] == ["LOC", 3, 3] and berlin["predicted"] == {"baseline": [["ORG", 3, 3]],
                                                                       "char_cnn": [["LOC", 3, 3]]}
    assert (berlin["category"], berlin["line"]) == ("IV", 1)
    assert london_bridge["predicted"]["baseline"] == [["LOC", 2, 2]] and london_bridge["category"] == "OOBV"


def test_an_entity_missed_by_one_seed_only_is_no_example():
    evaluation = fake_evaluation(PREDICTED, GOLD)
    evaluation.predicted["test", "char_cnn", 2] = PREDICTED  # seed 2 of char_cnn misses them too
    params = EvaluateParams(bootstrap_resamples=1000, permutation_resamples=1000, seed=42, batch_size=8)
    examples = break_down(evaluation, {"test": SENTENCES}, LEXICON, params).examples["baseline_vs_char_cnn"]
    assert (examples["gained_total"], examples["gained"]) == (0, [])


def test_examples_file_marks_the_entity_and_escapes_markdown():
    sentence = ["a|b", "met", "Grace", "Road", "*"]
    example = {"sentence": 0, "line": 12, "tokens": sentence, "gold": ["LOC", 2, 3],
               "predicted": {"baseline": [], "char_cnn": [["LOC", 2, 3]]}, "category": "OOBV",
               "type": "LOC", "length": "2", "casing": "initial_upper"}
    text = examples_markdown({"baseline_vs_char_cnn": {"pair": ["baseline", "char_cnn"], "split": "test",
                                                       "gained": [example], "gained_total": 7,
                                                       "lost": [], "lost_total": 0}})
    assert "**Gained: 7 test entities** that char_cnn finds" in text
    assert ("| test.txt:12 | a\\|b met **Grace Road** \\* | Grace Road (LOC) | none | Grace Road (LOC) | OOBV | "
            "initial_upper |") in text

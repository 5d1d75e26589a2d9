import pytest
import yaml

from pipeline.data.corpus import Sentence
from pipeline.errors import PipelineError
from pipeline.params import load_params
from pipeline.training.pairs import check_recipe
from tests.conftest import REPO_ROOT


def write_params(tmp_path, change):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    change(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_project_params_are_valid():
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.model.cell in ("simple", "gru", "lstm")


def test_a_variant_is_the_shared_model_with_its_changes(tmp_path):
    params = load_params(write_params(tmp_path, lambda p: p["models"].update(
        char_cnn_gru={"char_encoder": "cnn", "cell": "gru", "units": 50})))
    shared = params.model.model_dump()
    assert params.tagger("char_cnn_gru").model_dump() == {**shared, "char_encoder": "cnn", "cell": "gru", "units": 50}
    assert params.tagger("baseline").model_dump() == {**shared, "char_encoder": "none"}


def test_a_batch_larger_than_the_training_set_is_refused_naming_the_key(tmp_path):
    with pytest.raises(PipelineError, match=r"train.batch_size: 64 is more than the 50 train sentences that "
                                            r"data.limit keeps"):
        load_params(write_params(tmp_path, lambda p: (p["data"].update(limit=50), p["train"].update(batch_size=64))))
    params = load_params(write_params(tmp_path, lambda p: p["train"].update(batch_size=4)))
    train = [Sentence(["Peter"], ["B-PER"], line) for line in (1, 3, 5)]
    with pytest.raises(PipelineError, match=r"^params.yaml: train.batch_size: 4 is more than the 3 sentences of "
                                            r"data/raw/train.txt; lower it$"):
        check_recipe(params, train, "data/raw/train.txt")
    check_recipe(params, train * 2, "data/raw/train.txt")  # 6 sentences: batches of 4 are fine

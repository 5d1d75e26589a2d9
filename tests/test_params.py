import yaml

from pipeline.params import load_params
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

import pytest
import yaml

from pipeline.errors import PipelineError
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


@pytest.mark.parametrize("change, message", [
    (lambda p: p["model"].update(cell="tcn"), r"model.cell: Input should be 'simple', 'gru' or 'lstm'"),
    (lambda p: p["train"].update(epochs_typo=3), r"train.epochs_typo: Extra inputs are not permitted"),
    (lambda p: p["train"].pop("seeds"), r"train.seeds: Field required"),
    (lambda p: p["train"].update(learning_rate=float("inf")), r"train.learning_rate: Input should be a finite number"),
    (lambda p: p["train"].update(threads=0), r"train.threads: Input should be greater than or equal to 1"),
    (lambda p: p["cluster"].update(gpus_per_task="some"), r"cluster.gpus_per_task"),
    (lambda p: p.update(clusters={}), r"clusters: Extra inputs are not permitted"),
    (lambda p: p["train"].update(seeds=[]), r"train.seeds: List should have at least 1 item"),
    (lambda p: p["train"].update(seeds=[1, 1]), r"train.seeds: seeds must be distinct, got \[1, 1\]"),
    (lambda p: p["train"].update(seeds=[1, -2]), r"train.seeds.1: Input should be greater than or equal to 0"),
    (lambda p: p["model"].update(dropout=1.5), r"model.dropout: Input should be less than 1"),
    (lambda p: p["data"].update(limit=0), r"data.limit: Input should be greater than or equal to 1"),
    (lambda p: p["data"].update(dataset="custom"), r"data: dataset 'custom' needs data.files.train"),
    (lambda p: p["evaluate"].update(bootstrap_resamples=10), r"evaluate.bootstrap_resamples"),
    (lambda p: p["model"].update(decoder="hmm"), r"model.decoder: Input should be 'softmax' or 'crf'"),
    (lambda p: p["model"].update(word_vectors="glove-6b-50d", word_dim=100),
     r"model.word_dim: must be 50 to hold the glove-6b-50d vectors, got 100"),
    (lambda p: p["model"].update(word_vectors="glove-6b-50d", word_dim=50) or p["vocab"].update(lowercase=False),
     r"vocab.lowercase: must be true with model.word_vectors glove-6b-50d"),
    (lambda p: p["data"].update(format="xml"), r"data.format: Input should be 'conll' or 'jsonl'"),
    (lambda p: p["models"]["char_gru"].update(char_encoder="gru") if "char_gru" in p["models"]
     else p["models"].update(char_gru={"char_encoder": "gru"}),
     r"models.char_gru.char_encoder: Input should be 'none', 'cnn' or 'lstm'"),
    (lambda p: p["models"].update(wide={}), r"models.wide.char_encoder: Field required"),
    (lambda p: p["models"].update(wide={"char_encoder": "cnn", "unitz": 200}), r"models.wide.unitz: Extra inputs"),
    (lambda p: p["models"].update(wide={"char_encoder": "cnn", "word_dim": 100}),
     r"models.wide.word_dim: must be 50 to hold the glove-6b-50d vectors"),
    (lambda p: p["models"].update(wide={"char_encoder": "cnn", "word_vectors": "none"}),
     r"models.wide.word_vectors: set it in model.word_vectors"),
    (lambda p: p["models"].update({"Char-CNN": {"char_encoder": "cnn"}}), r"models.Char-CNN.\[key\]: String should match"),
    (lambda p: p["models"].update(gains={"char_encoder": "cnn"}), r"models.gains: the name is taken"),
    (lambda p: p.update(models={}), r"models: Dictionary should have at least 1 item"),
    (lambda p: p["compare"].append(["baseline", "char_gru"]), r"compare.3: 'char_gru' is not in models"),
    (lambda p: p["compare"].append(["baseline", "baseline"]), r"compare.3: compares 'baseline' with itself"),
    (lambda p: p["compare"].append(["baseline"]), r"compare.3: List should have at least 2 items"),
])
def test_bad_params_name_the_key(tmp_path, change, message):
    with pytest.raises(PipelineError, match=message):
        load_params(write_params(tmp_path, change))


def test_a_variant_is_the_shared_model_with_its_changes(tmp_path):
    params = load_params(write_params(tmp_path, lambda p: p["models"].update(
        char_cnn_gru={"char_encoder": "cnn", "cell": "gru", "units": 50})))
    shared = params.model.model_dump()
    assert params.tagger("char_cnn_gru").model_dump() == {**shared, "char_encoder": "cnn", "cell": "gru", "units": 50}
    assert params.tagger("baseline").model_dump() == {**shared, "char_encoder": "none"}


def test_not_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(PipelineError, match="params.yaml: not valid YAML"):
        load_params(path)


def test_check_params_stage_names_a_key_that_no_stage_reads(tmp_path, monkeypatch, capsys):
    from pipeline import check_params
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, lambda p: p.update(trian={"epochs": 1}))
    with pytest.raises(SystemExit) as exit_info:
        check_params.main()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: params.yaml: trian: Extra inputs are not permitted\n"
    write_params(tmp_path, lambda p: None)
    check_params.main()
    assert capsys.readouterr().out.startswith("params.yaml: valid (")

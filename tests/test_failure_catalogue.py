"""The failure catalogue: bad params, bad data files, bad predict input and bad models, each run
through the real command a user runs, in a project folder of its own. Every case asserts the
whole outcome: the exit status, a stderr whose last line is `error: ...` naming the key, file,
line, URL or server (and nothing else but argparse's usage line, and TensorFlow's start-up notices
where the command imports it), nothing on stdout, and every
file the project had before, byte for byte, with no temporary file left behind.

The faults that need a whole pipeline (`kill -9` of a `dvc repro`, a tracking server that goes
down) are in test_pipeline_e2e.py and test_recovery.py; a full disk is in test_vocab.py and test_files.py.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from tests.conftest import REPO_ROOT, free_port

pytestmark = pytest.mark.slow  # each case runs the real command in a fresh process

# TensorFlow's C++ start-up notices (oneDNN, CPU features), printed by its import whatever the command
TENSORFLOW_NOTICE = re.compile(r"WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} \d\d:\d\d:\d\d")
DEAD_SERVER = f"http://127.0.0.1:{free_port()}"  # nobody listens there
GOOD_CONLL = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n" \
             "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\nin IN B-PP O\nBerlin NNP B-NP B-LOC\n"


@dataclass(frozen=True)
class Case:
    name: str
    command: list[str]  # after `python -m`
    setup: Callable[[Path], None]  # breaks something in the project folder
    message: str  # the error line, from "error: " on; may use {project}
    code: int = 1
    env: dict[str, str] = field(default_factory=dict)


def params_case(name: str, change: Callable[[dict], object], message: str) -> Case:
    def setup(project: Path):
        params = yaml.safe_load((project / "params.yaml").read_text())
        change(params)
        (project / "params.yaml").write_text(yaml.safe_dump(params))
    return Case(f"params: {name}", ["pipeline.stages.check_params"], setup, f"params.yaml: {message}")


def writes(path: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(project: Path):
        target = project / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return setup


def data_case(name: str, content: str | bytes, message: str) -> Case:
    """The custom train file holds `content`; the download stage must name its line."""
    return Case(f"data: {name}", ["pipeline.stages.download"], writes("sources/train.txt", content),
                f"{{project}}/sources/train.txt{message}")


def predict_case(name: str, content: bytes, message: str) -> Case:
    return Case(f"predict input: {name}", ["pipeline.cli.predict", "--model", "models/tiny", "--input", "input.txt"],
                writes("input.txt", content), f"input.txt{message}")


def model_case(name: str, setup: Callable[[Path], None], message: str) -> Case:
    return Case(f"model: {name}", ["pipeline.cli.predict", "--model", "models/tiny", "--input", "input.txt"],
                setup, message)


def truncate_tagger(project: Path):
    tagger = project / "models/tiny/seed_1/tagger.keras"
    tagger.write_bytes(tagger.read_bytes()[:5000])


def rename_a_layer_argument(project: Path):
    """As a model saved by another version of the project would look: a layer argument renamed
    (one the tagger is run by: the word embedding's count of fine-tuned rows)."""
    tagger = project / "models/tiny/seed_1/tagger.keras"
    with zipfile.ZipFile(tagger) as source:
        items = [(item, source.read(item)) for item in source.infolist()]
    with zipfile.ZipFile(tagger, "w") as target:
        for item, data in items:
            target.writestr(item, data.replace(b'"trained_rows"', b'"tuned_rows"') if item.filename == "config.json"
                            else data)


def remove_tagger(project: Path):
    (project / "models/tiny/seed_1/tagger.keras").unlink()


def nothing(project: Path):
    pass


CASES = [
    params_case("unknown cell", lambda p: p["model"].update(cell="tcn"),
                "model.cell: Input should be 'simple', 'gru' or 'lstm'"),
    params_case("misspelt train key", lambda p: p["train"].update(epochs_typo=3),
                "train.epochs_typo: Extra inputs are not permitted"),
    params_case("misspelt top-level section", lambda p: p.update(trian={"epochs": 1}),
                "trian: Extra inputs are not permitted"),
    params_case("missing seeds", lambda p: p["train"].pop("seeds"), "train.seeds: Field required"),
    params_case("a batch larger than the kept train set",
                lambda p: (p["data"].update(train_limit=50), p["train"].update(batch_size=64)),
                "train.batch_size: 64 is more than the 50 train sentences that data.train_limit keeps"),
    params_case("infinite learning rate", lambda p: p["train"].update(learning_rate=float("inf")),
                "train.learning_rate: Input should be a finite number"),
    params_case("decay beside the linear schedule", lambda p: p["train"].update(lr_schedule="linear", lr_decay=0.1),
                "train.lr_decay: 0.1 is read by lr_schedule inverse_time only; set it to 0 with lr_schedule linear "
                "(which decays to the last epoch by itself)"),
    params_case("zero threads", lambda p: p["train"].update(threads=0),
                "train.threads: Input should be greater than or equal to 1"),
    params_case("gpus_per_task not a number", lambda p: p["cluster"].update(gpus_per_task="some"),
                "cluster.gpus_per_task: Input should be 'auto' or Input should be a valid number, unable to parse "
                "string as a number"),
    params_case("no seeds", lambda p: p["train"].update(seeds=[]), "train.seeds: List should have at least 1 item"),
    params_case("repeated seed", lambda p: p["train"].update(seeds=[1, 1]),
                "train.seeds: seeds must be distinct, got [1, 1]"),
    params_case("negative seed", lambda p: p["train"].update(seeds=[1, -2]),
                "train.seeds.1: Input should be greater than or equal to 0"),
    params_case("dropout above 1", lambda p: p["model"].update(dropout=1.5), "model.dropout: Input should be less than 1"),
    params_case("zero limit", lambda p: p["data"].update(limit=0),
                "data.limit: Input should be greater than or equal to 1"),
    params_case("custom dataset without files", lambda p: p["data"].update(dataset="custom", files=None),
                "data: dataset 'custom' needs data.files.train"),
    params_case("too few bootstrap resamples", lambda p: p["evaluate"].update(bootstrap_resamples=10),
                "evaluate.bootstrap_resamples: "),
    params_case("unknown decoder", lambda p: p["model"].update(decoder="hmm"),
                "model.decoder: Input should be 'softmax' or 'crf'"),
    params_case("word_dim that GloVe lacks", lambda p: p["model"].update(word_vectors="glove-6b-50d", word_dim=100),
                "model.word_dim: must be 50 to hold the glove-6b-50d vectors, got 100"),
    params_case("cased words with lower-cased GloVe",
                lambda p: p["model"].update(word_vectors="glove-6b-50d", word_dim=50) or p["vocab"].update(
                    lowercase=False), "vocab.lowercase: must be true with model.word_vectors glove-6b-50d"),
    params_case("unknown data format", lambda p: p["data"].update(format="xml"),
                "data.format: Input should be 'conll' or 'jsonl'"),
    params_case("unknown char encoder", lambda p: p["models"].update(char_gru={"char_encoder": "gru"}),
                "models.char_gru.char_encoder: Input should be 'none', 'cnn' or 'lstm'"),
    params_case("variant without char encoder", lambda p: p["models"].update(wide={}),
                "models.wide.char_encoder: Field required"),
    params_case("misspelt variant key", lambda p: p["models"].update(wide={"char_encoder": "cnn", "unitz": 200}),
                "models.wide.unitz: Extra inputs are not permitted"),
    params_case("variant changing word vectors",
                lambda p: p["models"].update(wide={"char_encoder": "cnn", "word_vectors": "none"}),
                "models.wide.word_vectors: set it in model.word_vectors"),
    params_case("variant name with capitals", lambda p: p["models"].update({"Char-CNN": {"char_encoder": "cnn"}}),
                "models.Char-CNN.[key]: String should match pattern"),
    params_case("variant named like a report key", lambda p: p["models"].update(gains={"char_encoder": "cnn"}),
                "models.gains: the name is taken"),
    params_case("no models", lambda p: p.update(models={}), "models: Dictionary should have at least 1 item"),
    params_case("comparison with an unknown model", lambda p: p["compare"].append(["baseline", "char_gru"]),
                "compare.3: 'char_gru' is not in models"),
    params_case("model compared with itself", lambda p: p["compare"].append(["baseline", "baseline"]),
                "compare.3: compares 'baseline' with itself"),
    params_case("comparison of one model", lambda p: p["compare"].append(["baseline"]),
                "compare.3: List should have at least 2 items"),
    Case("params: not YAML", ["pipeline.stages.check_params"], writes("params.yaml", "model: [unclosed\n"),
         "params.yaml:2:1: not valid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence)"),
    data_case("wrong column count", "EU NNP B-NP B-ORG\nrejects VBZ O\n", ":2: expected 4 columns"),
    data_case("one column", "EU\n", ":1: expected at least 2 columns (token ... tag), found 1: 'EU'"),
    data_case("empty token", "EU NNP B-NP B-ORG\n NNP B-NP O\n", ":2: empty token (the line starts with whitespace)"),
    data_case("unknown tag prefix", "EU NNP B-NP X-ORG\n", ":1: unknown tag 'X-ORG'"),
    data_case("tag without type", "EU NNP B-NP B-\n", ":1: unknown tag 'B-'"),
    data_case("zero typed for O", "EU NNP B-NP 0\n", ":1: unknown tag '0'"),
    data_case("not UTF-8", b"EU B-ORG\nM\xfcnchen B-LOC\n", ":2: not valid UTF-8"),
    data_case("no sentences", "-DOCSTART- -X- -X- O\n\n", ": no sentences found"),
    Case("data: missing file", ["pipeline.stages.download"], lambda project: (project / "sources/train.txt").unlink(),
         "{project}/sources/train.txt: file not found"),
    Case("data: a test tag never seen in train", ["pipeline.stages.vocab"],
         writes("data/raw/test.txt", "Zürich\tB-LOC\nAG\tB-ORG\nsays\tB-EVENT\n"),
         "data/raw/test.txt:3: tag 'B-EVENT' does not occur in train"),
    predict_case("empty", b"", ": empty input (nothing to tag)"),
    predict_case("blank lines only", b"  \n\n", ": empty input (nothing to tag)"),
    predict_case("not UTF-8", b"fine line\nM\xfcnchen\n", ":2: not valid UTF-8"),
    predict_case("tag the model does not know", b"Berlin NNP B-LOC\nAcme NNP B-COMPANY\n",
                 ":2: tag 'B-COMPANY' does not occur in train"),
    predict_case("CoNLL without -DOCSTART- and a typo'd tag",
                 b"CRICKET NNP B-NP O\nLEICESTERSHIRE NNP B-NP 0\nTAKE NNP I-NP O\n", ":2: unknown tag '0'"),
    predict_case("JSON line without tags", b'{"tokens": ["EU"], "tags": ["B-ORG"]}\n{"tokens": ["a"]}\n',
                 ":2: expected an object with string lists"),
    Case("predict input: missing file", ["pipeline.cli.predict", "--model", "models/tiny", "--input", "absent.txt"],
         nothing, "absent.txt: cannot read (No such file or directory)"),
    Case("predict: batch size 0", ["pipeline.cli.predict", "--model", "models/tiny", "--batch-size", "0"], nothing,
         "argument --batch-size: expected a positive integer, got '0'", code=2),
    Case("predict: negative batch size", ["pipeline.cli.predict", "--model", "models/tiny", "--batch-size", "-1"],
         nothing, "argument --batch-size: expected a positive integer, got '-1'", code=2),
    Case("network: a bad download timeout", ["pipeline.stages.download"], nothing,
         "NER_DOWNLOAD_TIMEOUT='20s': expected 2 positive number(s) of seconds, comma-separated (default 10,20)",
         env={"NER_DOWNLOAD_TIMEOUT": "20s"}),
    Case("network: a zero health-check timeout", ["pipeline.cli.predict", "--model", "runs:/0123/tagger", "--input", "input.txt"], nothing,
         "NER_TRACKING_TIMEOUT='0': expected 1 positive number(s) of seconds", env={"NER_TRACKING_TIMEOUT": "0"}),
    Case("network: the tracking server is down", ["pipeline.cli.predict", "--model", "runs:/0123/tagger", "--input", "input.txt"], nothing,
         f"MLFLOW_TRACKING_URI={DEAD_SERVER}: the tracking server does not answer (ConnectionError); start it, or "
         "unset MLFLOW_TRACKING_URI to use the local store"),
    model_case("no such folder", lambda project: shutil.rmtree(project / "models"), "models/tiny: no such model folder"),
    model_case("folder without a tagger", remove_tagger, "models/tiny: not a trained model folder"),
    model_case("truncated tagger file", truncate_tagger,
               "models/tiny/seed_1/tagger.keras: not a complete .keras file (truncated or corrupt)"),
    model_case("saved by another version", rename_a_layer_argument,
               "models/tiny/seed_1/tagger.keras: this version cannot load it as a tagger (no 'trained_rows' in it)"),
]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def base_project(tmp_path_factory) -> Path:
    """A project whose last run went well: params for a small custom dataset, its data/raw and
    vocabulary, and a saved (untrained) tagger at models/tiny."""
    from tests.test_model import make_tagger
    project = tmp_path_factory.mktemp("catalogue") / "project"
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["data"].update(dataset="custom", format="conll",
                          files={split: f"{project}/sources/{split}.txt" for split in ("train", "dev", "test")})
    params["model"].update(word_vectors="none")
    params["vocab"].update(pretrained_words=0, min_count=1)
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for split in ("train", "dev", "test"):
        writes(f"sources/{split}.txt", GOOD_CONLL)(project)
    for stage in ("download", "vocab", "char_vocab"):
        done = run(project, [f"pipeline.stages.{stage}"])
        assert done.returncode == 0, done.stderr
    (project / "models/tiny/seed_1").mkdir(parents=True)
    make_tagger("cnn")[2].save(project / "models/tiny/seed_1/tagger.keras")
    (project / "input.txt").write_text("Peter lives in Berlin.\n")
    return project


def run(project: Path, command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1",  # CI does not install it
           "MLFLOW_TRACKING_URI": DEAD_SERVER, **(env or {})}  # no stage here may need a server
    return subprocess.run([sys.executable, "-m", *command], cwd=project, capture_output=True, text=True, env=env,
                          timeout=300)


def test_the_catalogue_has_at_least_40_named_cases():
    assert len({case.name for case in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_failure(case: Case, base_project, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(base_project, project, symlinks=True)
    # the copied params point at base_project's sources: point them here
    (project / "params.yaml").write_text((project / "params.yaml").read_text().replace(str(base_project),
                                                                                        str(project)))
    case.setup(project)
    before = snapshot(project)
    done = run(project, case.command, case.env)
    lines = [line for line in done.stderr.splitlines() if line.strip() and not TENSORFLOW_NOTICE.match(line)]
    assert done.returncode == case.code, done.stderr[-2000:]
    assert done.stdout == ""
    assert lines and (lines[-1].startswith("error: ") if case.code == 1 else ": error: " in lines[-1]), done.stderr
    assert case.message.format(project=project) in lines[-1]
    assert len(lines) == 1 or case.code == 2 and lines[0].startswith("usage: "), done.stderr  # argparse: usage first
    assert snapshot(project) == before  # nothing lost, nothing half-written, no temporary file

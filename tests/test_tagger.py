"""The Python API and the predict command on a small (untrained) tagger saved to disk."""
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from pipeline import Tagger
from pipeline.cli.predict import main as predict
from pipeline.data.tokenize import tokenize
from pipeline.data.vocabulary import frozen_word_rows
from pipeline.errors import PipelineError
from pipeline.model.network import build_encoder, build_network, build_tagger
from pipeline.model.tagger import entities_of, list_digest, tagger_identity
from pipeline.model.trained import FROZEN_ROWS_FILE, npy_bytes
from pipeline.params import TaggerParams
from tests.conftest import REPO_ROOT, ctrl_c_reaches_it
from tests.test_model import CHARS, PARAMS, TAGS, WORDS, make_tagger


@pytest.fixture(scope="module")
def saved_tagger(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "seed_1"
    folder.mkdir()
    make_tagger("cnn")[2].save(folder / "tagger.keras")
    (folder / "summary.json").write_text(json.dumps({"best_dev_f1": 1.0}))
    return folder


def test_entities_carry_token_and_character_offsets():
    text = "Yesterday Peter Blackburn flew to New York."
    tokens, spans = tokenize(text)
    tags = ["O", "B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"]
    entities = entities_of(text, tokens, spans, tags)
    assert [(e.text, e.type, e.start, e.end) for e in entities] == [("Peter Blackburn", "PER", 1, 3),
                                                                   ("New York", "LOC", 5, 7)]
    assert all(text[e.char_start:e.char_end] == e.text for e in entities)


def test_api_tags_raw_text_and_reports_what_it_skipped(saved_tagger):
    tagger = Tagger.load(saved_tagger.parent)  # models/<name>: picks the seed folder
    results = tagger.tag(["Peter lives in Berlin.", "   ", "Zürich"])
    assert results[0].tokens == ["Peter", "lives", "in", "Berlin", "."]
    assert len(results[0].tags) == 5 and set(results[0].tags) <= set(TAGS)
    assert results[1].skipped == "empty or whitespace-only text" and results[1].tokens == []
    assert results[2].to_dict().keys() == {"text", "tokens", "tags", "entities"}
    with pytest.raises(TypeError, match="list of texts"):
        tagger.tag("Peter lives in Berlin.")


def test_pyfunc_model_skips_missing_texts_instead_of_tagging_nan(saved_tagger):
    import pandas as pd

    from pipeline.tracking.models import TaggerModel
    model = TaggerModel()
    model.tagger = Tagger.load(saved_tagger)
    out = model.predict(None, pd.DataFrame({"text": ["Peter lives in Berlin.", None, float("nan")]}))
    assert out[0]["tokens"] == ["Peter", "lives", "in", "Berlin", "."]
    assert [o.get("skipped") for o in out[1:]] == ["empty or whitespace-only text"] * 2
    assert out[1]["tokens"] == out[2]["tokens"] == []


def test_a_tagger_loads_and_tags_without_tensorflow(saved_tagger):
    """Loading reads the weights from the file (forward.saved_weights): predict, evaluate and the
    MLflow model start without importing TensorFlow (about 6 s) or building the graph."""
    code = ("import sys; from pipeline import Tagger; "
            f"print(Tagger.load({str(saved_tagger)!r}).tag(['Peter lives in Berlin.'])[0].tokens); "
            "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["['Peter', 'lives', 'in', 'Berlin', '.']", "[]"]
    in_process = Tagger.load(saved_tagger)
    assert in_process.forward is not None and in_process.model is None


def test_load_errors(tmp_path):
    with pytest.raises(PipelineError, match="not a trained model folder"):
        Tagger.load(tmp_path)
    with pytest.raises(PipelineError, match="no such model folder"):
        Tagger.load(tmp_path / "missing")
    (tmp_path / "tagger.keras").write_text("not a model")
    with pytest.raises(PipelineError, match="tagger.keras: not a complete .keras file"):
        Tagger.load(tmp_path)


def test_a_truncated_tagger_file_is_named_as_truncated_not_missing(saved_tagger, tmp_path):
    whole = (saved_tagger / "tagger.keras").read_bytes()
    (tmp_path / "tagger.keras").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(PipelineError, match=r"tagger.keras: not a complete .keras file \(truncated or corrupt\)"):
        Tagger.load(tmp_path)


def saved_by_another_version(folder, target, old: bytes, new: bytes):
    """A copy of the saved tagger in `folder` whose config.json says `new` where it said `old`, as a
    newer version might save it."""
    import zipfile
    target.mkdir()
    with zipfile.ZipFile(folder / "tagger.keras") as source, zipfile.ZipFile(target / "tagger.keras", "w") as copy:
        for item in source.infolist():
            data = source.read(item)
            copy.writestr(item, data.replace(old, new) if item.filename == "config.json" else data)
    return target


def test_a_tagger_saved_by_another_version_asks_for_retraining(saved_tagger, tmp_path):
    """A layer argument renamed since the file was saved: one line, no traceback, where the forward
    pass reads it and where Keras builds the graph (a GRU tagger). The forward pass reads weights and
    what it runs them by, so an argument the weights carry (the CNN's `filters`) changes nothing there."""
    renamed = saved_by_another_version(saved_tagger, tmp_path / "renamed", b'"max_word_length"', b'"max_chars"')
    with pytest.raises(PipelineError, match="this version cannot load it as a tagger .* must be trained again") as error:
        Tagger.load(renamed)
    assert "\n" not in str(error.value) and "(no 'max_word_length' in it)" in str(error.value)

    unused = saved_by_another_version(saved_tagger, tmp_path / "unused", b'"filters"', b'"n_filters"')
    sentences = [["Peter", "lives", "in", "Berlin", "."]]
    assert Tagger.load(unused).tag_tokens(sentences) == Tagger.load(saved_tagger).tag_tokens(sentences)

    gru = tmp_path / "gru"
    gru.mkdir()
    make_tagger("cnn", cell="gru")[2].save(gru / "tagger.keras")
    renamed = saved_by_another_version(gru, tmp_path / "gru_renamed", b'"filters"', b'"n_filters"')
    with pytest.raises(PipelineError, match="this version cannot load it as a tagger .* must be trained again") as error:
        Tagger.load(renamed)
    assert "\n" not in str(error.value) and "missing 1 required positional argument: 'filters'" in str(error.value)


def run_predict(args, capsys, stdin=None, monkeypatch=None):
    if stdin is not None:
        import io
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    try:
        predict(args)
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_text_to_conll_and_json(saved_tagger, capsys, monkeypatch):
    code, out, err = run_predict(["--model", str(saved_tagger)], capsys,
                                 "EU rejects German lamb.\n \nPeter's dog\n".encode(), monkeypatch)
    assert code == 0
    blocks = out.strip("\n").split("\n\n")
    assert [[line.split("\t")[0] for line in block.split("\n")] for block in blocks] == [
        ["EU", "rejects", "German", "lamb", "."], ["Peter", "'s", "dog"]]
    assert "skipped 1 empty or whitespace-only line(s): 2" in err
    code, out, _ = run_predict(["--model", str(saved_tagger), "--format", "json"], capsys,
                               "Peter lives in Berlin.\n".encode(), monkeypatch)
    record = json.loads(out)
    assert record["tokens"] == ["Peter", "lives", "in", "Berlin", "."] and len(record["tags"]) == 5


def test_predict_conll_input_keeps_tokens_and_scores(saved_tagger, tmp_path, capsys):
    conll = tmp_path / "gold.txt"
    conll.write_text("-DOCSTART- -X- O\n\nU.S. NNP B-LOC\nofficials NNS O\n\nPeter NNP B-PER\n")
    code, out, err = run_predict(["--model", str(saved_tagger), "--input", str(conll)], capsys)
    assert code == 0
    assert [line.split("\t")[0] for line in out.split("\n") if line] == ["U.S.", "officials", "Peter"]
    assert "FB1:" in err and "processed 3 tokens" in err


def test_predict_reads_iob1_bioes_and_jsonl_gold_like_training_data(saved_tagger, tmp_path, capsys):
    scores = []
    for name, content in [("iob2.txt", "Peter B-PER\nBlackburn I-PER\nin O\nBerlin B-LOC\n"),
                          ("iob1.txt", "Peter I-PER\nBlackburn I-PER\nin O\nBerlin I-LOC\n"),
                          ("bioes.txt", "Peter B-PER\nBlackburn E-PER\nin O\nBerlin S-LOC\n"),
                          ("gold.jsonl", '{"tokens": ["Peter", "Blackburn", "in", "Berlin"], '
                                         '"tags": ["B-PER", "I-PER", "O", "B-LOC"]}\n')]:
        (tmp_path / name).write_text(content)
        code, out, err = run_predict(["--model", str(saved_tagger), "--input", str(tmp_path / name)], capsys)
        assert code == 0 and "processed 4 tokens" in err, (name, err)
        scores.append(err[err.index("processed"):])
    assert len(set(scores)) == 1  # the same gold entities, whatever the scheme or format


def test_predict_with_a_folder_that_is_not_a_model(tmp_path, capsys):
    (tmp_path / "in.txt").write_text("Peter lives in Berlin.\n")
    code, _, err = run_predict(["--model", str(tmp_path), "--input", str(tmp_path / "in.txt")], capsys)
    assert code == 1 and "not a trained model folder" in err


def test_a_tagger_saved_before_the_modules_moved_still_loads_and_tags_as_it_did():
    """tests/fixtures/legacy_tagger: char_cnn + CRF saved by the flat pipeline/ layout (its README
    says how it was made); Keras finds its layers by their registered names, not their modules."""
    fixture = REPO_ROOT / "tests/fixtures/legacy_tagger"
    expected = json.loads((fixture / "expected.json").read_text())
    tagger = Tagger.load(fixture)
    assert tagger.tag_tokens(expected["tokens"]) == expected["tags"]
    assert any(tag != "O" for tags in expected["tags"] for tag in tags)  # a real tagger, not all-O
    assert tagger.forward is not None  # its layers found by name, tagged by the NumPy forward pass
    graph = keras.saving.load_model(fixture / "tagger.keras")
    assert type(graph.get_layer("network").get_layer("char_encoder")).__module__ == "pipeline.model.layers"
    assert Tagger.of_graph(graph).tag_tokens(expected["tokens"]) == expected["tags"]


def wait_until_reading(pid: int, timeout: float = 180) -> None:
    """Until the process's main thread sleeps in a read of its stdin pipe: the kernel's wait channel,
    and the system call's first argument, file descriptor 0 (a child's output is read from a pipe
    too); a fixed sleep is too short on a busy machine."""
    deadline = time.monotonic() + timeout
    while "pipe" not in Path(f"/proc/{pid}/wchan").read_text() or \
            Path(f"/proc/{pid}/syscall").read_text().split()[1:2] != ["0x0"]:
        assert time.monotonic() < deadline, "the command never got to reading its input"
        time.sleep(0.2)


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_is_one_line_and_the_shell_s_exit_status(signal_number):
    """Ctrl-C (or a scheduler's SIGTERM) while a command waits (here predict, for its input on a
    pipe): no traceback."""
    command = subprocess.Popen([sys.executable, "-m", "pipeline.cli.predict", "--model", "tests/fixtures/legacy_tagger"],
                               cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=ctrl_c_reaches_it)
    wait_until_reading(command.pid)  # past the imports: it is reading its input
    command.send_signal(signal_number)
    command.wait(timeout=60)  # stdin still open: the read ends by the signal, not at the end of the input
    _, stderr = command.communicate(timeout=60)
    assert command.returncode == 128 + signal_number, stderr  # 130 and 143, as the shell reports them
    assert stderr == ("interrupted: what had finished is kept and nothing is half-written; run the same command "
                      "again to go on\n")


def test_a_very_long_sentence_is_tagged_in_windows_with_bounded_batches(monkeypatch):
    """Memory does not grow with one line's length: windows of WINDOW tokens, at most
    MAX_BATCH_TOKENS padded tokens per call of the network; every token still gets its tag, in order."""
    from pipeline.model import tagger as tagger_module
    monkeypatch.setattr(tagger_module, "WINDOW", 7)
    monkeypatch.setattr(tagger_module, "MAX_BATCH_TOKENS", 20)
    tagger = Tagger.load(REPO_ROOT / "tests/fixtures/legacy_tagger")
    expected = json.loads((REPO_ROOT / "tests/fixtures/legacy_tagger/expected.json").read_text())
    shapes, tag_batch = [], tagger.tag_batch
    monkeypatch.setattr(tagger, "tag_batch", lambda batch: shapes.append((len(batch), max(map(len, batch))))
                        or tag_batch(batch))
    long = [token for tokens in expected["tokens"] for token in tokens]  # 42 tokens: 6 windows of 7
    short = expected["tokens"][1]  # 9 tokens: windows of 7 and 2
    tagged = tagger.tag_tokens([long, short, []], batch_size=256)
    assert [len(tags) for tags in tagged] == [len(long), len(short), 0]
    assert all(rows * length <= 20 for rows, length in shapes) and sum(rows for rows, _ in shapes) == 6 + 2
    windowed = [tagger.tag_tokens([long[start:start + 7]])[0] for start in range(0, len(long), 7)]
    assert tagged[0] == [tag for window in windowed for tag in window]  # the windows' tags, in order


def saved_with_identity(folder, identity, summary=None):
    """A small tagger carrying `identity`, saved to `folder` (with `summary` as its summary.json)."""
    encoder, network, _ = make_tagger("cnn")
    folder.mkdir(parents=True)
    build_tagger(encoder, network, TAGS, identity).save(folder / "tagger.keras")
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))


def load_error(folder) -> str:
    with pytest.raises(PipelineError) as error:
        Tagger.load(folder)
    return str(error.value)


def test_a_tagger_knows_which_training_it_is_and_refuses_another_s_folder(tmp_path):
    identity = tagger_identity("char_cnn", "f" * 64, WORDS, CHARS)
    saved_with_identity(tmp_path / "char_cnn/seed_1", identity, {"model": "char_cnn", "seed": 1, "fingerprint": "f" * 64})
    assert Tagger.load(tmp_path / "char_cnn/seed_1").identity == identity
    # another training's tagger.keras copied into a folder whose summary.json describes this one
    summary = {"model": "baseline", "seed": 2, "fingerprint": "b" * 64}
    saved_with_identity(tmp_path / "baseline/seed_2", identity, summary)
    assert load_error(tmp_path / "baseline/seed_2") == (
        f"{tmp_path}/baseline/seed_2/tagger.keras: trained as char_cnn (fingerprint ffffffffffff), but "
        f"{tmp_path}/baseline/seed_2/summary.json describes baseline seed 2 (fingerprint bbbbbbbbbbbb): the folder "
        "holds another training's tagger; train it again (dvc repro) or restore the folder (dvc checkout)")


def test_a_tagger_whose_vocabulary_is_not_its_own_is_refused(tmp_path):
    other_words = [*WORDS[:-1], "Hamburg"]  # the vocabulary of another training
    saved_with_identity(tmp_path / "mixed", tagger_identity("char_cnn", "f" * 64, other_words, CHARS))
    assert load_error(tmp_path / "mixed") == (
        f"{tmp_path}/mixed/tagger.keras: its words vocabulary (sha256 {list_digest(WORDS)[:12]}) is not the one it "
        f"was trained with (sha256 {list_digest(other_words)[:12]}): the file mixes two taggers' parts; train it "
        "again (dvc repro)")


def test_a_tagger_reads_its_frozen_word_rows_from_beside_it_and_refuses_another_training_s(tmp_path):
    """The frozen pretrained rows live in frozen_rows.npy beside tagger.keras (one file that DVC
    caches once for every tagger of a run), checked against the digest the tagger carries."""
    vectors = np.random.default_rng(0).normal(size=(len(WORDS), 16)).astype("float32")
    params = TaggerParams(**{**PARAMS.model.model_dump(), "word_vectors": "none", "word_dim": 16,
                             "char_encoder": "none", "casing": False})
    encoder = build_encoder(WORDS, None, False, 8)
    network = build_network(len(WORDS) + 2, 2, len(TAGS), params, vectors, trained_words=3)  # Peter, lives, . frozen
    frozen = npy_bytes(frozen_word_rows(vectors, 3))
    in_memory = build_tagger(encoder, network, TAGS, tagger_identity("baseline", "f" * 64, WORDS, None, frozen))
    folder = tmp_path / "seed_1"
    folder.mkdir()
    in_memory.save(folder / "tagger.keras")
    (folder / FROZEN_ROWS_FILE).write_bytes(frozen)
    sentences = [["Peter", "lives", "in", "Berlin", "."]]
    loaded = Tagger.load(folder)
    assert loaded.tag_tokens(sentences) == Tagger.of_graph(in_memory).tag_tokens(sentences)
    np.testing.assert_array_equal(np.concatenate([loaded.forward.trained, loaded.forward.frozen]),
                                  network.get_layer("word_embedding").rows())

    (folder / FROZEN_ROWS_FILE).write_bytes(npy_bytes(frozen_word_rows(vectors * 2, 3)))  # another vocabulary's
    other = hashlib.sha256((folder / FROZEN_ROWS_FILE).read_bytes()).hexdigest()
    assert load_error(folder) == (
        f"{folder}/{FROZEN_ROWS_FILE}: not the frozen word vectors {folder}/tagger.keras was trained with (sha256 "
        f"{other[:12]}, it expects {hashlib.sha256(frozen).hexdigest()[:12]}); restore the folder (dvc checkout) or "
        "train it again (dvc repro)")
    (folder / FROZEN_ROWS_FILE).unlink()
    assert load_error(folder) == (
        f"{folder}/{FROZEN_ROWS_FILE}: cannot read the tagger's frozen word vectors (No such file or directory); "
        "restore the folder (dvc checkout or dvc pull) or train it again (dvc repro)")

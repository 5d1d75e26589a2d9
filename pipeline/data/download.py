"""Fetch the dataset's splits, verify SHA-256, write each split once in the
normalized form every later stage reads (data/raw/<split>.txt: token<TAB>IOB2 tag), with
`data.limit` and `data.train_limit` applied here and nowhere else.

All splits are fetched into a temporary folder beside data/raw and renamed into place only
when every file has arrived intact and parses, so a failure leaves nothing half-written.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from pipeline.data.corpus import Sentence, as_iob2, detect_scheme, read_tagged, write_normalized
from pipeline.data.datasets import dataset_files, is_url
from pipeline.errors import PipelineError
from pipeline.files import file_digest, fsync_folder, replace_durably, umask_mode, write_json_atomic
from pipeline.layout import RAW_DIR, resolve_local

if TYPE_CHECKING:  # the data layer sits below params: it reads their fields, never imports them
    from pipeline.params import DataParams

CHUNK = 1 << 16
# (connect, read) seconds: a server that accepts the connection and then sends nothing for 20 s is
# given up on after one more try, rather than after minutes; NER_DOWNLOAD_TIMEOUT=connect,read changes them
TIMEOUT = (10, 20)
TIMEOUT_ENV = "NER_DOWNLOAD_TIMEOUT"
READ_RETRIES = 1


def http_session(retries: int = 4, backoff: float = 0.5) -> requests.Session:
    """A session that retries connection errors and transient HTTP statuses with exponential backoff
    (a silent server: READ_RETRIES more tries)."""
    read = min(retries, READ_RETRIES)
    retry = Retry(total=retries, connect=retries, read=read, status=retries, backoff_factor=backoff,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET",), raise_on_status=False)
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def download_url(url: str, dest: Path, session: requests.Session, timeout: tuple[float, float] = TIMEOUT) -> str:
    """Stream `url` into `dest` with a progress bar; return the SHA-256 of what arrived."""
    digest = hashlib.sha256()
    try:
        with session.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise PipelineError(f"{url}: HTTP {response.status_code} {response.reason}")
            expected = response.headers.get("Content-Length")
            received = 0
            with open(dest, "wb") as file, tqdm(total=int(expected) if expected else None, unit="B",
                                                unit_scale=True, desc=Path(urlparse(url).path).name,
                                                disable=None) as bar:
                for chunk in response.iter_content(CHUNK):
                    file.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as error:
        if isinstance(error, requests.exceptions.Timeout) or "Read timed out" in str(error):
            raise PipelineError(f"{url}: the server did not answer within {timeout[1]:g} s; try again later, or "
                                "set data.source to a local copy of the files (see README)") from None
        raise PipelineError(f"{url}: download failed ({type(error).__name__}: {error}); offline? set data.source "
                            "to a local copy of the files (see README)") from None
    except requests.exceptions.RequestException as error:
        raise PipelineError(f"{url}: download failed ({type(error).__name__}: {error})") from None
    if expected is not None and received != int(expected):
        raise PipelineError(f"{url}: truncated download ({received} of {expected} bytes)")
    return digest.hexdigest()


def copy_local(path: Path, dest: Path) -> str:
    """Copy a local file into `dest`; return its SHA-256."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as source, open(dest, "wb") as file:
            while chunk := source.read(CHUNK):
                file.write(chunk)
                digest.update(chunk)
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found") from None
    except OSError as error:
        raise PipelineError(f"{path}: cannot read ({error.strerror})") from None
    return digest.hexdigest()


def split_sources(data: DataParams) -> dict[str, tuple[str, str | None]]:
    """Where each split comes from (URL or local path) and its expected SHA-256 (None: not checked)."""
    if data.dataset == "custom":
        return {split: (location if is_url(location) else str(resolve_local(location)), None)
                for split, location in data.files.items()}
    files = dataset_files(data.dataset, data.language)
    if data.source == "default":
        return {split: (f.url, f.sha256) for split, f in files.items()}
    folder = resolve_local(data.source)
    if not folder.is_dir():
        raise PipelineError(f"params.yaml: data.source: {folder} is not a folder (use 'default' or a local folder)")
    for f in files.values():
        if not (folder / f.local_name).is_file():
            raise PipelineError(f"{folder / f.local_name}: not in the data.source mirror; put the file published at "
                                f"{f.url} there, or set data.source: default to fetch it")
    return {split: (str(folder / f.local_name), f.sha256) for split, f in files.items()}


def origin_name(data: DataParams, split: str) -> str:
    """How messages name a split's file: as params.yaml gives it (data.files), or by the dataset's
    own file name (conll2003/valid.txt: the same whichever source served the bytes, so data/raw
    hashes the same)."""
    return data.files[split] if data.dataset == "custom" else dataset_files(data.dataset, data.language)[split].local_name


def without_language_prefix(sentences: list[Sentence], language: str, location: str) -> list[Sentence]:
    """WikiANN's tokens carry their language (`de:Berlin`), which is not part of the word: strip it;
    a token of another language (or none) is an error naming its line."""
    prefix = f"{language}:"
    stripped = []
    for sentence in sentences:
        for index, token in enumerate(sentence.tokens):
            if not token.startswith(prefix) or len(token) == len(prefix):
                raise PipelineError(f"{location}:{sentence.line_of(index)}: token {token!r} does not start with "
                                    f"{prefix!r} (data.language: {language})")
        stripped.append(replace(sentence, tokens=[token[len(prefix):] for token in sentence.tokens]))
    return stripped


def fetch_split(location: str, expected_sha256: str | None, dest: Path, session: requests.Session,
                timeout: tuple[float, float] = TIMEOUT) -> str:
    sha256 = download_url(location, dest, session, timeout) if is_url(location) else copy_local(Path(location), dest)
    if expected_sha256 and sha256 != expected_sha256:
        raise PipelineError(f"{location}: SHA-256 mismatch: expected {expected_sha256}, got {sha256}")
    return sha256


def download(data: DataParams, out_dir: Path = RAW_DIR, session: requests.Session | None = None,
             timeout: tuple[float, float] = TIMEOUT) -> dict:
    """Fetch, verify, parse and normalize every split, then move them into `out_dir` in one rename."""
    sources = split_sources(data)
    session = session or http_session()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        manifest = {}
        for split, (location, expected) in sources.items():
            fetched = staging / f".{split}.source"
            sha256 = fetch_split(location, expected, fetched, session, timeout)
            # parse now, naming the source's line on bad input, rather than in a later stage
            as_given = read_tagged(fetched, data.format, name=location)
            if data.dataset == "wikiann":
                as_given = without_language_prefix(as_given, data.language, location)
            scheme, sentences = detect_scheme(as_given), as_iob2(as_given)
            fetched.unlink()
            kept = sentences[: data.limit_of(split)]
            write_normalized(staging / f"{split}.txt", kept)
            normalized_sha256 = file_digest(staging / f"{split}.txt")
            # no source location here: data/raw must hash the same whichever source gave the bytes
            manifest[split] = {"sha256": sha256, "format": data.format, "tag_scheme": scheme,
                               "sentences": len(kept), "tokens": sum(len(s.tokens) for s in kept),
                               "source_sentences": len(sentences),
                               # where each sentence came from, for messages about it in later stages
                               "origin": {"file": origin_name(data, split), "format": data.format,
                                          "lines": [s.line for s in kept], "normalized_sha256": normalized_sha256}}
            print(f"{split}: {len(kept)} of {len(sentences)} sentences ({scheme} tags) from {location}")
        write_json_atomic(staging / "manifest.json", manifest)
        staging.chmod(umask_mode(0o777))  # mkdtemp makes it private
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
        fsync_folder(out_dir.parent)
        return manifest
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def mirror_dataset(name: str, folder: Path, session: requests.Session | None = None, language: str | None = None
                   ) -> None:
    """Lay the files of dataset `name` (wikiann: of `language`) out in `folder` as a `data.source`
    mirror expects them (conll2003/train.txt, wikiann/de/train, ...), fetched from their public URLs
    and SHA-256 checked; files already there with the right SHA-256 are kept. Each file appears
    whole or not at all."""
    session = session or http_session()
    for remote in dataset_files(name, language).values():
        target = folder / remote.local_name
        if target.is_file() and remote.sha256 and file_digest(target) == remote.sha256:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        try:
            fetch_split(remote.url, remote.sha256, partial, session)
            replace_durably(partial, target)
        finally:
            partial.unlink(missing_ok=True)

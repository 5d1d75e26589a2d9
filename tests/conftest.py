import contextlib
import glob
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


# The modules that take longest, longest first: the test workers (pytest-xdist, pyproject.toml) take
# whole modules in this order, so that the long ones start at once and the two workers end together
LONGEST_FIRST = ("test_pipeline_e2e.py", "test_experiments.py", "test_recovery.py", "test_quick_run.py",
                 "test_study.py", "test_recipes.py", "test_model.py", "test_failure_catalogue.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


DATA_ENV = "NER_SHARED_DATA"  # a folder laid out like a data.source mirror: conll2003/train.txt, ...
CI_ENV = "CI"  # set by .ci/run: a missing server or browser fails the run instead of skipping tests


def data_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ner-char-embeddings" / "data"


class NoTestData(Exception):
    """The real data is neither in NER_SHARED_DATA nor downloadable; the message says what to do."""


def find_data() -> Path:
    """The real CoNLL-2003 / CoNLL++ files (never committed): $NER_SHARED_DATA, else a cache folder
    filled once by the project's own download code (public URLs, SHA-256 checked)."""
    from pipeline.data.datasets import DATASETS
    from pipeline.data.download import mirror_dataset
    from pipeline.errors import PipelineError

    if os.environ.get(DATA_ENV):
        folder = Path(os.environ[DATA_ENV]).expanduser().resolve()
        missing = [f.local_name for f in DATASETS["conll2003"].values() if not (folder / f.local_name).is_file()]
        if missing:
            raise NoTestData(f"{DATA_ENV}={folder}: {', '.join(missing)} not found there; point {DATA_ENV} at a "
                             "folder laid out like conll2003/train.txt, conll2003/valid.txt, conll2003/test.txt, "
                             "conllpp/conllpp_test.txt, or unset it to download them")
        return folder
    folder = data_cache()
    try:
        mirror_dataset("conll2003", folder)
    except PipelineError as error:
        reason = re.split(r" \(|;", str(error))[0]  # "<url>: download failed", "<url>: HTTP 404 ..."
        urls = " ".join(f.url for f in DATASETS["conll2003"].values())
        raise NoTestData(f"no test data: set {DATA_ENV} to a folder holding conll2003/train.txt, conll2003/valid.txt, "
                         f"conll2003/test.txt and conllpp/conllpp_test.txt; downloading them into {folder} failed "
                         f"({reason}). Their public URLs: {urls}") from None
    return folder


NO_DATA: list[str] = []  # why find_data failed before the session began, so that it is not tried twice


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Find the data before the test workers start. A worker that stops the run is a crash to
    pytest-xdist (a traceback), so without the data the run stays in this one process, where the
    first test that needs it stops the run with one line (mirrored_data)."""
    if hasattr(config, "workerinput") or getattr(config.option, "dist", "no") == "no" or config.getvalue("collectonly"):
        return
    try:
        find_data()
    except NoTestData as error:
        NO_DATA.append(str(error))
        config.option.numprocesses, config.option.dist, config.option.tx = 0, "no", []


def mirrored_data() -> Path:
    """find_data's folder; without it, the run stops with one line saying what to do."""
    try:
        if NO_DATA:
            raise NoTestData(NO_DATA[0])
        return find_data()
    except NoTestData as error:
        pytest.exit(str(error), returncode=3)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return mirrored_data()


@pytest.fixture(scope="session")
def wikiann_mirror(shared_data):
    """A data.source mirror holding WikiANN German (the shared folder's, else fetched once into the
    test data cache from the public URLs, SHA-256 checked)."""
    if all((shared_data / "wikiann/de" / split).is_file() for split in ("train", "dev", "test")):
        return shared_data
    from pipeline.data.download import mirror_dataset
    mirror_dataset("wikiann", data_cache(), language="de")
    return data_cache()


def tiny_wikiann(mirror: Path, source: Path, language: str, sentences: int = 40) -> None:
    """A mirror of `language` made of German's first sentences, relabelled: a language no digest is
    pinned for, as a user adds one."""
    for split in ("train", "dev", "test"):
        blocks = (source / "wikiann/de" / split).read_text().split("\n\n")[:sentences]
        (mirror / "wikiann" / language).mkdir(parents=True, exist_ok=True)
        (mirror / "wikiann" / language / split).write_text(
            "\n\n".join(blocks).replace("de:", f"{language}:") + "\n")


def require_program(found: str | None, name: str, install: str) -> str:
    """A server or browser a test needs: missing, the test is skipped saying how to install it,
    except under CI, where it fails."""
    if found:
        return found
    message = f"{name} not found; install it with `{install}`"
    if os.environ.get(CI_ENV):
        pytest.fail(message + f" ({CI_ENV} is set: .ci/run installs it)", pytrace=False)
    pytest.skip(message)


def copy_of_repo(folder: Path) -> Path:
    """The repository's files that git would version (committed or not), copied into `folder`: no
    models, stores or caches."""
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                             capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (REPO_ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, folder / name)
    return folder


def run_in_own_session(command: list[str], cwd: Path, timeout: float, stderr=subprocess.PIPE
                       ) -> subprocess.CompletedProcess:
    """Run a long command (a whole pipeline) in a session of its own, so that on a timeout dvc, its
    stages and the local Ray they started are killed with it. It uses the copy's own MLflow store:
    MLFLOW_TRACKING_URI, which mlflow.set_tracking_uri in an earlier test leaves in this process's
    environment, is not passed on."""
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr, text=True,
                               start_new_session=True, env=env)
    try:
        stdout, errors = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, errors)


def ctrl_c_reaches_it() -> None:
    """preexec_fn of a command a test sends Ctrl-C (SIGINT) to: SIGINT at its default, as in a
    terminal's foreground job. A suite started in the background (`pytest &` in a script, nohup)
    has SIGINT ignored, every process it starts inherits that, and Python then never raises
    KeyboardInterrupt: the command would carry on as if no Ctrl-C had come."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def commit_as_a_clone(repo: Path) -> None:
    """Make `repo` (a copy_of_repo) a git repository with everything committed, as a clone is."""
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=tests", "-c", "user.email=tests@localhost", "commit", "-qm", "clone"],
                    [sys.executable, "-m", "dvc", "config", "core.analytics", "false"]):
        subprocess.run(command, cwd=repo, check=True, capture_output=True)


@pytest.fixture(scope="session")
def real_train(shared_data):
    from pipeline.data.corpus import read_corpus as read_conll
    return read_conll(shared_data / "conll2003" / "train.txt")


@pytest.fixture(scope="session")
def real_dev(shared_data):
    from pipeline.data.corpus import read_corpus as read_conll
    return read_conll(shared_data / "conll2003" / "valid.txt")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(command: list[str], port: int, log: Path, cwd: Path = REPO_ROOT, timeout: float = 120,
            health: str = "/health", env: dict | None = None):
    """Run a server (in its own session, so its workers stop with it) until `health` answers on
    127.0.0.1:`port`; yield its URL; stop it. Output goes to `log`, a file: a busy server's request
    log would fill a pipe and block it."""
    with open(log, "w") as output:
        server = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                  env=env)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}{health}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, f"{command[:3]} did not start:\n" + (
                    log.read_text()[-2000:])
                time.sleep(1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have stopped by itself
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a graceful stop waits for clients' idle keep-alive connections
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def postgres_binary(name: str) -> str:
    """initdb / pg_ctl: on PATH, or where Debian's postgresql package puts them."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    return require_program(found, f"PostgreSQL's {name}", "sudo apt-get install postgresql")


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on 127.0.0.1, in a throw-away folder; yields a database URL (the
    database itself does not exist yet: pipeline.cli.tracking_server creates it)."""
    folder = Path(tempfile.mkdtemp(prefix="ner-postgres-"))  # under /tmp, so the postgres user can reach it
    as_postgres = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        shutil.chown(folder, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    subprocess.run([*as_postgres, postgres_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run([*as_postgres, postgres_binary("pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w",
                    "-o", f"-h 127.0.0.1 -p {port} -k {folder}", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/mlflow_team"
    finally:
        subprocess.run([*as_postgres, postgres_binary("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def start_ray_cluster() -> int:
    """A local multi-process Ray cluster: a head node with no CPUs for tasks and a worker node
    started as a separate process, so every task runs on the worker. Returns the head's port
    (RAY_ADDRESS = 127.0.0.1:<port>)."""
    try:
        return start_ray_cluster_once()
    except RayStartFailed as error:  # failed once (CI) while another test's local Ray was starting
        print(f"start_ray_cluster: {error}; trying again on another port", file=sys.stderr)
        return start_ray_cluster_once()


def start_ray_cluster_once() -> int:
    """start_ray_cluster's head and worker on a free port; what a failed start left is stopped."""
    ray = str(Path(sys.executable).parent / "ray")
    port = free_port()
    try:
        ray_start(ray, "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "0",
                  "--include-dashboard", "false", "--disable-usage-stats")
        ray_start(ray, "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
                  "--disable-usage-stats")
    except BaseException:
        stop_ray_cluster(port)
        raise
    return port


class RayStartFailed(Exception):
    pass


def ray_start(ray: str, *args: str) -> None:
    """`ray start ARGS`, with Ray's own last lines in the error if it fails."""
    result = subprocess.run([ray, "start", *args], capture_output=True, text=True)
    if result.returncode != 0:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
        raise RayStartFailed(f"ray start {' '.join(args)}: exit {result.returncode}: " + " | ".join(said))


def cluster_processes(port: int) -> list:
    """The GCS, raylets and agents of the Ray cluster whose GCS listens on <port> (by their cmdline:
    `--gcs_server_port=<port>` or `--gcs-address=<any ip>:<port>`)."""
    mark = re.compile(rf"--gcs_server_port={port}\b|--gcs[-_]address=\S*:{port}\b")
    return [process for process in psutil.process_iter(["cmdline"])
            if mark.search(" ".join(process.info["cmdline"] or ()))]


def stop_ray_cluster(port: int) -> None:
    """Stop the processes of the cluster at 127.0.0.1:<port> and theirs, and no other. `ray stop`
    would kill every Ray of the machine: a `dvc repro` running beside the tests included."""
    roots = cluster_processes(port)
    family = set(roots)
    for process in roots:
        with contextlib.suppress(psutil.Error):
            family.update(process.children(recursive=True))  # the workers (their cmdline is ray::...)
    for process in family:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(list(family), timeout=30)


@pytest.fixture
def ray_cluster(monkeypatch):
    """start_ray_cluster's cluster for one test; yields RAY_ADDRESS. Like any Ray >= 2.52 cluster
    it takes a token: every process started from here on gets it in its environment."""
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
    port = start_ray_cluster()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_ray_cluster(port)

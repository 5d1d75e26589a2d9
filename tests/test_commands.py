"""`--help` on every command says what it does, reads and writes, and writes nothing; a stage
given an argument it does not take stops with a usage error before doing any work."""
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.cli.ner import COMMANDS
from pipeline.stages.arguments import stage_io
from tests.conftest import REPO_ROOT, copy_of_repo


def run(args: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def files_in(folder) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*")
            if "__pycache__" not in path.parts}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return copy_of_repo(tmp_path_factory.mktemp("help"))


@pytest.mark.slow  # a process per command, most of them importing TensorFlow
def test_every_command_answers_help_and_writes_nothing(repo):
    before = files_in(repo)
    calls = [["-m", command.module, ["--help", "-h"][i % 2]] for i, command in enumerate(COMMANDS.values())]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda args: run(args, repo), calls))
    for (_, module, _), (name, command), result in zip(calls, COMMANDS.items(), results):
        assert result.returncode == 0, (module, result.stderr)
        assert result.stdout.startswith(f"usage: python -m {module}"), result.stdout
        assert result.stderr == "", (module, result.stderr)  # TensorFlow's start-up lines included
        if command.stage:
            io = stage_io(name)
            assert f"reads params.yaml: {', '.join(io['params']) or '-'}" in result.stdout
            assert f"writes:            {', '.join(io['writes']) or 'nothing'}" in result.stdout
    assert "reads params.yaml: model, models, train" in results[list(COMMANDS).index("train")].stdout
    assert files_in(repo) == before


LIBRARIES = {"numpy", "scipy", "mlflow", "ray", "tensorflow", "keras"}  # seconds to import, together
BENCHMARKS = sorted(path.stem for path in (REPO_ROOT / "benchmarks").glob("*.py") if path.stem != "__init__")


def imported_modules(result: subprocess.CompletedProcess) -> set[str]:
    """The modules a `python -X importtime` run imported."""
    return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("name", [name for name, command in COMMANDS.items() if command.module.startswith("pipeline.")])
def test_a_command_answers_help_and_usage_errors_before_importing_its_libraries(name):
    module = COMMANDS[name].module
    for args in ([module, "--help"], ["pipeline.cli.ner", name, "-h"], [module, "--epochs", "3"]):
        result = run(["-X", "importtime", "-m", *args], REPO_ROOT)
        imported = imported_modules(result)
        if "--epochs" in args:
            assert result.returncode == 2 and f"usage: python -m {module}" in result.stderr, result.stderr[-500:]
        else:
            assert result.returncode == 0 and result.stdout.startswith(f"usage: python -m {module}"), result.stderr
        assert imported & LIBRARIES == set(), args


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_benchmark_answers_help_without_importing_tensorflow(name):
    """TensorFlow comes in where a benchmark measures (the speed benchmark's measuring processes, say),
    not in the process that reads the arguments, starts them, times repros and writes the report."""
    result = run(["-X", "importtime", "-m", f"benchmarks.{name}", "--help"], REPO_ROOT)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: python -m benchmarks.{name}"), result.stderr
    assert imported_modules(result) & {"tensorflow", "keras"} == set()


@pytest.mark.parametrize("stage", [name for name, command in COMMANDS.items() if command.stage])
def test_a_stage_given_an_unknown_argument_is_a_usage_error_and_runs_nothing(repo, stage):
    before = files_in(repo)
    result = run(["-m", COMMANDS[stage].module, "--epochs", "3"], repo)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (f"python -m pipeline.stages.{stage}: error: unrecognized arguments: "
                                             "--epochs 3")
    assert files_in(repo) == before


def test_ner_lists_the_commands_and_runs_one():
    listing = run(["-m", "pipeline.cli.ner", "--help"], REPO_ROOT)
    assert listing.returncode == 0 and all(f"  {name} " in listing.stdout for name in COMMANDS)
    stage = run(["-m", "pipeline.cli.ner", "download", "--help"], REPO_ROOT)
    assert stage.returncode == 0 and "reads params.yaml: data.dataset" in stage.stdout
    unknown = run(["-m", "pipeline.cli.ner", "fit"], REPO_ROOT)
    assert unknown.returncode == 2 and "invalid choice: 'fit'" in unknown.stderr

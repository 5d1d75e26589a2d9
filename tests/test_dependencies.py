"""Every third-party module the code imports is declared: the pipeline's in requirements.txt and
pyproject.toml's dependencies, the tests' in requirements-test.txt and the `test` extra; and no
test-only package sits among the pipeline's requirements."""
import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from pipeline.data.word_vectors import PRETRAINED
from tests.conftest import REPO_ROOT

RUNTIME_CODE = ("pipeline", "benchmarks")
TEST_CODE = ("tests", "docs")


def imported_modules(folders) -> set[str]:
    found = set()
    for folder in folders:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in (*RUNTIME_CODE, "tests")}


def owners(modules: set[str]) -> dict[str, set[str]]:
    """module -> the installed distributions that provide it (mlflow: mlflow and mlflow-skinny)."""
    installed = packages_distributions()
    missing = sorted(module for module in modules if module not in installed)
    assert not missing, f"imported but not installed: {missing}"
    return {module: {normal(name) for name in installed[module]} for module in modules}


def undeclared(modules: dict[str, set[str]], declared_names: set[str]) -> list[str]:
    return sorted(module for module, names in modules.items() if not names & declared_names)


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements_file: str) -> set[str]:
    names = set()
    for line in (REPO_ROOT / requirements_file).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-r"):
            names.add(normal(re.match(r"[A-Za-z0-9_.-]+", line).group(0)))
    return names


def test_every_imported_package_is_declared_where_it_belongs():
    runtime = owners(imported_modules(RUNTIME_CODE) | {spec[1] for spec in PRETRAINED.values()})
    tests = owners(imported_modules(TEST_CODE) - set(runtime))
    required, test_only = declared("requirements.txt"), declared("requirements-test.txt")
    assert undeclared(runtime, required) == [], "imported by the pipeline, missing from requirements.txt"
    assert undeclared(tests, test_only) == [], "imported by the tests, missing from requirements-test.txt"
    assert not required & test_only, "requirements-test.txt repeats what requirements.txt has"
    assert not required & {"pytest", "playwright", "setuptools", "mkdocs", "mkdocs-material"}

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    name = lambda spec: normal(re.match(r"[A-Za-z0-9_.-]+", spec).group(0))
    in_project = {name(spec) for spec in project["dependencies"]}
    in_extra = {name(spec) for spec in project["optional-dependencies"]["test"]}
    assert in_project == required and in_extra == test_only  # the package declares what the files pin

"""The layout's rules hold: import-linter's contracts (pyproject.toml) and the modules' sizes."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")
MODULE_LINES, STAGE_LINES = 300, 80


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_import_contracts_are_kept():
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "6 kept" in result.stdout


def test_a_model_module_importing_mlflow_code_breaks_the_contracts(tmp_path):
    """The check can fail: tagging that imports the tracking layer (the circle the layout removed)
    breaks the layers, the model's freedom from MLflow and the no-circles contract."""
    shutil.copytree(REPO_ROOT / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    tagger = tmp_path / "pipeline/model/tagger.py"
    tagger.write_text(tagger.read_text() + "\n\ndef resolve(uri):\n    from pipeline.tracking.models import "
                      "download_model\n    return download_model(uri)\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    for contract in ("Entry points above the library, the library in layers BROKEN",
                     "The model code is free of DVC, MLflow and Ray, even indirectly BROKEN",
                     "No circles between the subpackages BROKEN"):
        assert contract in result.stdout
    assert "pipeline.model.tagger -> pipeline.tracking.models" in result.stdout


def test_no_module_is_long_and_every_stage_is_thin():
    sizes = {path.relative_to(REPO_ROOT): len(path.read_text().splitlines())
             for path in (REPO_ROOT / "pipeline").rglob("*.py")}
    assert {path: n for path, n in sizes.items() if n > MODULE_LINES} == {}
    stages = {path: n for path, n in sizes.items() if path.parent.name == "stages" and path.name != "__init__.py"}
    assert len(stages) == 7  # six stages and their shared command line
    assert {path: n for path, n in stages.items() if n > STAGE_LINES} == {}


def test_the_processes_that_send_trainings_to_ray_or_tag_do_not_import_tensorflow():
    """The train stage and the search only schedule trainings, write what comes back and log it:
    TensorFlow (about 7 s to import) is imported by the Ray workers that train (pairs.train_pair).
    What tags a saved tagger (evaluate, predict) runs the NumPy forward pass (test_tagger.py loads one)."""
    code = ("import sys, pipeline.stages.train, pipeline.cli.search, pipeline.training.pairs, "
            "pipeline.stages.evaluate, pipeline.cli.predict; "
            "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

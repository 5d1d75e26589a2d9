import shutil
import subprocess
import sys
import zipfile

from tests.conftest import REPO_ROOT


def test_the_project_builds_a_wheel_of_its_code_only(tmp_path):
    """`pip install .` / `pip install -e .` work: setuptools is told which packages are code, so
    data/, models/ and reports/ do not break the build or end up in the package."""
    source = tmp_path / "source"  # a copy: setuptools writes build/ and *.egg-info beside the sources
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", ".dvc", "__pycache__", "models",
                                                                     "mlruns", "mlartifacts", "mlflow.db"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path), str(source)], check=True, capture_output=True)
    wheel, = tmp_path.glob("ner_char_embeddings-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pipeline/training/fit.py" in names and "benchmarks/speed.py" in names
    assert "pipeline/cli/basic_auth.ini" in names  # the team server's settings (tracking_server.AUTH_SETTINGS)
    assert {name.split("/")[0] for name in names} <= {"pipeline", "benchmarks",
                                                      *(n.split("/")[0] for n in names if ".dist-info" in n)}
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Requires-Dist: keras" in text and "Provides-Extra: test" in text


def test_the_gpu_requirements_are_the_cpu_ones_with_cuda_tensorflow():
    def pins(name):
        lines = (REPO_ROOT / name).read_text().splitlines()
        return {line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()}
    cpu, gpu = pins("requirements.txt"), pins("requirements-gpu.txt")
    assert gpu - cpu == {"tensorflow[and-cuda]==2.21.*"}
    assert {pin for pin in cpu - gpu} == {'tensorflow-cpu==2.21.*; platform_machine == "x86_64"',
                                          'tensorflow==2.21.*; platform_machine != "x86_64"'}

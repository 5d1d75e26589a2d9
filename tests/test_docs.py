"""The documentation site builds with warnings as errors (a broken link or anchor, a missing page
fails), its reference pages cover every params.yaml key and every command, and the README stays a
front door that speaks to users only."""
import os
import re
import subprocess
import sys

import yaml

from pipeline.cli.ner import COMMANDS
from tests.conftest import REPO_ROOT


def test_the_site_builds_strictly_with_every_key_and_command(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    params_page = (site / "reference" / "params" / "index.html").read_text(encoding="utf-8")
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    for section, values in params.items():
        keys = [f"{section}.{key}" for key in values] if section not in ("models", "compare") else [section]
        for key in keys:
            assert f"<code>{key}</code>" in params_page, key
    commands_page = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for name, command in COMMANDS.items():
        assert f"usage: python -m {command.module}" in commands_page, name
    assert (site / "reports" / "figures" / "gains.png").stat().st_size > 10_000  # figures come from reports/


def project_text_files():
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        path = REPO_ROOT / name
        if path.suffix in (".md", ".py", ".yaml", ".yml", ".toml", ".txt", "") and path.is_file():
            yield name, path.read_text(encoding="utf-8", errors="replace")


def test_nothing_refers_to_the_team_s_notes_or_machines():
    """Users cannot follow issue numbers, a design note that is not in the repository, or a data
    folder beside the checkout that only some machines have."""
    forbidden = re.compile(r"\bissues? \d+|\bDESIGN" + r"\.md|\.\./" + r"shared\b", re.I)
    found = [f"{name}: {match.group(0)}" for name, text in project_text_files()
             for match in forbidden.finditer(text)]
    assert found == []


def test_the_readme_is_a_short_front_door():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    headings = re.findall(r"^## (.+)$", readme, re.M)
    assert headings[:3] == ["Results", "Set up and run", "Quick run"], headings
    assert "pytest" in readme and "python -m pipeline.cli.quick" in readme and "dvc repro" in readme

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


# Each row of docs/failure-modes.md (the start of its first cell) -> the tests that show it:
# "file::function" or, for the failure catalogue's cases, "catalogue:<case name>".
FAILURE_MODE_TESTS = {
    "a bad value or a misspelt key": ["catalogue:params: misspelt train key", "catalogue:params: misspelt top-level section",
                                      "test_pipeline_e2e.py::test_bad_param_value_stops_with_the_key_named"],
    "`params.yaml` is not YAML": ["catalogue:params: not YAML"],
    "a malformed data line": ["catalogue:data: wrong column count", "catalogue:data: zero typed for O", "catalogue:data: not UTF-8",
                              "test_download.py::test_malformed_custom_file_names_its_source_line"],
    "a SHA-256 mismatch": ["test_download.py::test_checksum_mismatch_stops_and_keeps_the_previous_download",
                           "test_download.py::test_http_404_names_the_url", "test_download.py::test_truncated_body_is_an_error",
                           "test_download.py::test_unreachable_host"],
    "a data server that accepts": ["test_download.py::test_a_server_that_never_answers_is_given_up_on_after_one_more_try"],
    "a tag in dev/test that train lacks": ["catalogue:data: a test tag never seen in train",
                                            "test_vocab.py::test_a_custom_dataset_s_tag_error_names_the_user_s_file_and_line"],
    "a byte-order mark": ["test_corpus.py::test_byte_order_marks_are_not_tokens"],
    "a learning rate that drives": ["catalogue:params: infinite learning rate",
                                    "test_model.py::test_a_loss_that_stops_being_finite_stops_the_training_with_the_setting_named",
                                    "test_model.py::test_a_loss_that_explodes_stops_the_training_even_with_clipping"],
    "a `train.batch_size` larger": ["catalogue:params: a batch larger than the kept train set",
                                    "test_params.py::test_a_batch_larger_than_the_training_set_is_refused_naming_the_key"],
    "the tracking server is down": ["catalogue:network: the tracking server is down",
                                    "test_pipeline_e2e.py::test_train_with_the_tracking_server_down_fails_at_once_and_keeps_the_models"],
    "a full disk": ["test_vocab.py::test_vocab_stage_on_a_full_disk_changes_no_file_and_says_so",
                    "test_files.py::test_a_full_disk_while_a_trained_pair_is_written_is_one_line_naming_the_file",
                    "test_tracking.py::test_a_full_disk_while_logging_a_tagger_is_one_line_and_the_run_ends_failed"],
    "`evaluate` fails midway": ["test_files.py::test_a_set_of_reports_that_fails_midway_leaves_the_previous_set"],
    "Ctrl-C or `kill` (SIGTERM)": ["test_tagger.py::test_ctrl_c_or_sigterm_is_one_line_and_the_shell_s_exit_status",
                                   "test_recovery.py::test_ctrl_c_during_dvc_repro_train_is_one_line_and_the_next_repro_goes_on"],
    "`kill -9` of `dvc` alone": ["test_recovery.py::test_kill_9_of_dvc_alone_leaves_no_orphan_training"],
    "`RAY_ADDRESS` where nothing listens": [
        "test_cluster.py::test_a_cluster_address_where_nothing_listens_fails_at_once_naming_it",
        "test_cluster.py::test_a_cluster_address_that_answers_but_is_not_ray_fails_by_the_deadline_naming_it"],
    "a damaged `mlflow.db`": ["test_tracking.py::test_a_damaged_store_is_one_line_whose_advice_works"],
    "`kill -9` of the whole `dvc repro`": [
        "test_recovery.py::test_kill_9_of_the_whole_repro_then_repro_again_loses_nothing_and_leaves_no_run_running"],
    "a Ray worker dies": ["test_recovery.py::test_a_killed_worker_is_retried_and_mlflow_gets_one_finished_run"],
    "predict: bad input": ["catalogue:predict input: missing file", "catalogue:predict input: tag the model does not know"],
    "predict: `--batch-size 0`": ["catalogue:predict: batch size 0", "catalogue:predict: negative batch size"],
    "a model folder without a tagger": ["catalogue:model: folder without a tagger", "catalogue:model: truncated tagger file",
                                        "catalogue:model: saved by another version",
                                        "test_files.py::test_an_empty_truncated_or_swapped_tagger_is_not_kept"],
    "another training's `tagger.keras`": [
        "test_tagger.py::test_a_tagger_knows_which_training_it_is_and_refuses_another_s_folder"],
    "a `tagger.keras` whose word or character vocabulary": [
        "test_tagger.py::test_a_tagger_whose_vocabulary_is_not_its_own_is_refused"],
    "a model folder whose `frozen_rows.npy`": [
        "test_tagger.py::test_a_tagger_reads_its_frozen_word_rows_from_beside_it_and_refuses_another_training_s",
        "test_files.py::test_an_empty_truncated_or_swapped_tagger_is_not_kept"],
    "text with emoji sequences": ["test_tokenize.py::test_conll_style_tokenization",
                                  "test_tokenize.py::test_spans_map_back_to_the_original_text_around_dropped_format_characters"],
    "predict: one line of a million tokens": [
        "test_tagger.py::test_a_very_long_sentence_is_tagged_in_windows_with_bounded_batches"],
    "a mistake in a study file": [
        "test_study.py::test_a_mistake_in_a_study_file_is_one_line_naming_the_setting_and_key"],
    "a setting of a study fails": [
        "test_study.py::test_a_tiny_study_runs_its_settings_as_dvc_experiments_a_fourth_language_by_params_alone"],
    "the team server started with a `--host`": [
        "test_tracking_server.py::test_a_server_other_machines_can_reach_needs_basic_auth_or_insecure",
        "test_tracking_server.py::test_basic_auth_as_documented_asks_every_client_for_a_password"],
}


def test_every_failure_mode_row_has_its_tests():
    import ast

    from tests.test_failure_catalogue import CASES
    rows = [line for line in (REPO_ROOT / "docs/failure-modes.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith(("| what goes wrong", "|---"))]
    cases = {case.name for case in CASES}
    functions: dict[str, set[str]] = {}
    for row in rows:
        first_cell = row.split(" | ")[0].removeprefix("| ")
        keys = [key for key in FAILURE_MODE_TESTS if first_cell.startswith(key)]
        assert len(keys) == 1, f"no tests named for the failure mode {first_cell!r}"
        for ref in FAILURE_MODE_TESTS[keys[0]]:
            if ref.startswith("catalogue:"):
                assert ref.removeprefix("catalogue:") in cases, ref
                continue
            file, function = ref.split("::")
            if file not in functions:
                tree = ast.parse((REPO_ROOT / "tests" / file).read_text())
                functions[file] = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
            assert function in functions[file], ref
    assert len(rows) == len(FAILURE_MODE_TESTS)  # no entry left for a row that is gone

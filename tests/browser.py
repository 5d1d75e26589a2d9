"""What a user sees in the MLflow UI, checked in headless Chromium (Debian's `chromium`, driven by
Playwright): the end-to-end tests call `check_mlflow_ui` on the store of their `dvc repro`."""
import json
import os
import re
import shutil
import sys
from pathlib import Path

import mlflow

from tests.conftest import free_port, require_program, serving

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 30_000  # the UI loads its data after the page; a cold server answers its first queries slowly


def shown(value: float) -> str:
    """A metric as the runs table shows it: at most 4 decimals, no trailing zeros."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def check_mlflow_ui(store: str, log: Path, compared: tuple[str, str]) -> None:
    """Start `mlflow ui` on `store` and check, as a user who opens it: the experiment opens on its
    training runs with the answer above them; the saved view shows the gain and F1 as columns; the
    chart view plots them; and comparing the two runs `compared` shows their params diff and metrics."""
    chromium = require_program(CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium"), "Chromium",
                    "sudo apt-get install chromium")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("ner-char-embeddings")
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    gain = runs["char-gain"].data.metrics["char_gain_test"]
    port = free_port()
    # one worker: a user's single browser needs no more, and 4 workers importing MLflow at once on
    # 2 cores make the server start several times slower
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host", "127.0.0.1", "--port",
               str(port), "--workers", "1"]
    # without MLflow's GenAI job runner (8 processes, about 2 GB and 25 s of CPU at its start on 2
    # cores), which no page here uses: the runs' pages are the same either way
    quiet = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with serving(command, port, log, env=quiet) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.set_default_timeout(WAIT_MS)
            experiment_page = f"{url}/#/experiments/{experiment.experiment_id}"

            # MLflow 3.17 opens on GenAI pages until the browser picks "Model training" (remembered).
            # The click event goes to the element itself: once (CI, a busy machine) an overlay of the
            # page took the pointer for the whole 30 s and a pointer click never landed
            page.goto(experiment_page)
            page.get_by_text("Model training", exact=True).dispatch_event("click")
            page.goto(f"{url}/#/experiments")
            page.goto(experiment_page)
            expect(page).to_have_url(re.compile(rf"#/experiments/{experiment.experiment_id}/runs"))
            for name in runs:  # every run at the top level: none collapsed under another
                expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
            expect(page.get_by_text(f"char_cnn vs baseline on test: {gain:+.2f} F1")).to_be_visible()

            # the link the description and the pipeline give, in a fresh browser: no click needed
            fresh = browser.new_page(viewport={"width": 1920, "height": 1080})
            fresh.set_default_timeout(WAIT_MS)
            fresh.goto(f"{experiment_page}/runs?workflowType=machine_learning&viewStateShareKey=char-gain")
            expect(fresh.get_by_text("What the characters add").first).to_be_visible()
            for column in ("char_gain_test", "char_gain_test_ci95_low", "char_gain_test_p_value"):
                expect(fresh.get_by_text(column, exact=True).first).to_be_visible()
            expect(fresh.get_by_text(shown(gain), exact=True).first).to_be_visible()

            # the chart view: one chart per metric, found by the chart search (a regular expression)
            fresh.goto("about:blank")  # a new load: the views read the URL when the page loads
            fresh.goto(f"{experiment_page}/runs?workflowType=machine_learning&compareRunsMode=CHART")
            search = fresh.get_by_placeholder("Search metric charts")
            for metric in ("char_gain_test", "test_f1"):
                search.fill(f"^{metric}$")
                expect(fresh.get_by_text(metric, exact=True).first).to_be_visible()

            # the compare view of two seed runs: the params that differ, and their metrics
            ids = [runs[name].info.run_id for name in compared]
            fresh.goto("about:blank")
            as_list = lambda values: json.dumps(values, separators=(",", ":"))
            fresh.goto(f"{url}/#/compare-runs?runs={as_list(ids)}&experiments={as_list([experiment.experiment_id])}"
                       "&workflowType=machine_learning")
            expect(fresh.get_by_text("char_vocab.max_word_length", exact=True).first).to_be_visible()
            fresh.get_by_text("Show diff only").first.click()
            expect(fresh.get_by_text("char_vocab.max_word_length", exact=True)).to_have_count(0)
            expect(fresh.get_by_text("model.char_encoder", exact=True).first).to_be_visible()
            expect(fresh.get_by_text("test_f1", exact=True).first).to_be_visible()
        finally:
            browser.close()

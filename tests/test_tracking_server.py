"""The team server's command stops with one line, and never echoes a password, on a bad database;
it asks for passwords before it listens beyond this machine; with --basic-auth it asks every client
for a password; no process shows the database password on its command line."""
import base64
import os
import sys
import urllib.error
import urllib.request

import mlflow
import psutil
import pytest
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

from pipeline.cli.tracking_server import check_exposure, ensure_database, main
from pipeline.errors import PipelineError
from tests.conftest import REPO_ROOT, free_port, serving


def test_a_database_url_that_is_not_postgresql_is_refused_without_its_password():
    with pytest.raises(PipelineError) as error:
        ensure_database("mysql://mlflow:s3cret@db-host/mlflow")
    assert str(error.value) == ("--database 'mysql://mlflow:***@db-host/mlflow': expected "
                                "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE")


def test_an_unreachable_postgresql_is_named_without_its_password():
    port = free_port()
    with pytest.raises(PipelineError, match=rf"^postgresql://mlflow:\*\*\*@127.0.0.1:{port}/mlflow: cannot connect") as error:
        ensure_database(f"postgresql://mlflow:s3cret@127.0.0.1:{port}/mlflow")
    assert "s3cret" not in str(error.value)


def test_a_server_other_machines_can_reach_needs_basic_auth_or_insecure(tmp_path, capsys):
    for host in ("0.0.0.0", "192.0.2.10", "mlflow.example.org"):
        with pytest.raises(SystemExit) as stopped:
            main(["--database", "postgresql://mlflow:s3cret@127.0.0.1:1/mlflow", "--artifacts", str(tmp_path),
                  "--host", host])
        assert stopped.value.code == 1
        assert capsys.readouterr().err == (f"error: --host {host}: a server that other machines can reach needs "
                                           "--basic-auth (user names and passwords); --insecure serves every run "
                                           "to anyone who reaches it\n")
    for host in ("127.0.0.1", "::1", "localhost"):
        check_exposure(host, basic_auth=False, insecure=False)
    check_exposure("0.0.0.0", basic_auth=True, insecure=False)
    check_exposure("0.0.0.0", basic_auth=False, insecure=True)
    assert "warning: --insecure: anyone who reaches 0.0.0.0 can read and write every run" in capsys.readouterr().err


@pytest.mark.slow  # a PostgreSQL and an MLflow server
def test_basic_auth_as_documented_asks_every_client_for_a_password(tmp_path, postgres_url, monkeypatch):
    """`--basic-auth` with the admin password from MLFLOW_AUTH_ADMIN_PASSWORD, as the scale-out page
    starts it: without credentials a request is refused, with the admin's it passes and a run can be
    logged; a verified password is remembered (the credential cache), a wrong one never is; no
    GenAI job runner starts; the database password is on no process's command line."""
    database = postgres_url.replace("postgresql://postgres@", "postgresql://postgres:pg-s3cret@")  # trust: any works
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    # in a folder of its own (its users go to basic_auth.db there), running this checkout's pipeline
    env.update(MLFLOW_AUTH_ADMIN_PASSWORD="a-long-s3cret-password", PYTHONPATH=str(REPO_ROOT))
    command = [sys.executable, "-m", "pipeline.cli.tracking_server", "--database", database, "--artifacts",
               str(tmp_path / "artifacts"), "--port", str(port), "--workers", "1", "--basic-auth"]

    def status(password: str | None) -> int:
        headers = {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()} \
            if password else {}
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code

    with serving(command, port, tmp_path / "server.log", cwd=tmp_path, env=env) as url:
        assert status(None) == 401
        assert status("a-long-s3cret-password") == 200
        server = next(process for process in psutil.process_iter(["cmdline"])
                      if f"--port {port}" in " ".join(process.info["cmdline"] or []))
        family = [" ".join(process.cmdline()) for process in [server, *server.children(recursive=True)]]
        assert not [line for line in family if "huey" in line or "_job_runner" in line], family
        shown = [" ".join(process.info["cmdline"] or []) for process in psutil.process_iter(["cmdline"])]
        assert not [line for line in shown if "pg-s3cret" in line]
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "a-long-s3cret-password")
        client = mlflow.MlflowClient(url)
        run = client.create_run(client.create_experiment("authenticated"))
        client.log_metric(run.info.run_id, "f1", 90.0)
        assert client.get_run(run.info.run_id).data.metrics == {"f1": 90.0}
        # the users live beside the server (basic_auth.db); change the admin's password behind its
        # back: the verified one is still remembered (for at most 60 s), an unverified one is refused
        users = SqlAlchemyStore()  # MLflow's own user store, on the server's file
        users.init_db(f"sqlite:///{tmp_path / 'basic_auth.db'}")
        users.update_user("admin", password="another-long-password")
        assert status("a-long-s3cret-password") == 200
        assert status("a-wrong-password") == 401


def test_basic_auth_without_an_admin_password_is_one_line_before_anything_is_made(tmp_path, capsys, monkeypatch):
    for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_AUTH_CONFIG_PATH"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as stopped:
        main(["--database", "postgresql://mlflow:s3cret@127.0.0.1:1/mlflow", "--artifacts", str(tmp_path / "a"),
              "--basic-auth"])
    assert stopped.value.code == 1
    assert capsys.readouterr().err == ("error: --basic-auth: MLflow ships no admin password; set "
                                       "MLFLOW_AUTH_ADMIN_PASSWORD (the admin user's, made at the first start) or "
                                       "MLFLOW_AUTH_CONFIG_PATH (an ini file with admin_password)\n")
    assert not (tmp_path / "a").exists()


def test_the_server_runs_with_the_users_own_auth_settings_and_job_runner_choice_where_given(tmp_path, monkeypatch):
    """What `mlflow server` is started with (its exec is caught here; the server test above runs it
    for real): the project's basic_auth.ini and no job runner by default, the user's own settings
    file and job choice where set; the database URL only in the environment."""
    from pipeline.cli import tracking_server
    started: list[tuple[list[str], dict]] = []
    monkeypatch.setattr(tracking_server, "ensure_database", lambda url: False)
    monkeypatch.setattr(tracking_server.os, "execve", lambda path, command, env: started.append((command, env)))
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "a-long-s3cret-password")
    # set here so that the command does not draw one into this test process's environment
    monkeypatch.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", "a-test-key")
    for name in ("MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"):
        monkeypatch.delenv(name, raising=False)
    database = "postgresql://mlflow:s3cret@127.0.0.1:1/mlflow"
    arguments = ["--database", database, "--artifacts", str(tmp_path / "a"), "--basic-auth"]
    main(arguments)
    main(arguments[:-1])  # without --basic-auth: no auth settings at all
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(tmp_path / "mine.ini"))
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    main(arguments)
    (default, default_env), (_, open_env), (_, own_env) = started
    assert default_env["MLFLOW_AUTH_CONFIG_PATH"] == str(REPO_ROOT / "pipeline/cli/basic_auth.ini")
    assert default_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false" and "--app-name" in default
    assert "MLFLOW_AUTH_CONFIG_PATH" not in open_env and open_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert own_env["MLFLOW_AUTH_CONFIG_PATH"] == str(tmp_path / "mine.ini")
    assert own_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"
    assert all(env["MLFLOW_BACKEND_STORE_URI"] == database and database not in command for command, env in started)

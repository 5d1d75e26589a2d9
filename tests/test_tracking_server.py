"""The team server's command stops with one line, and never echoes a password, on a bad database;
with --basic-auth it asks every client for a password."""
import base64
import os
import sys
import urllib.error
import urllib.request

import pytest

from pipeline.cli.tracking_server import ensure_database
from pipeline.errors import PipelineError
from tests.conftest import free_port, serving


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


@pytest.mark.slow  # a PostgreSQL and an MLflow server
def test_basic_auth_as_documented_asks_every_client_for_a_password(tmp_path, postgres_url):
    """`--basic-auth` runs MLflow's basic-auth app (its Flask-WTF dependency is declared):
    without credentials a request is refused, with the admin's from MLFLOW_AUTH_CONFIG_PATH it passes."""
    config = tmp_path / "auth.ini"
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = sqlite:///{tmp_path / 'users.db'}\n"
                      "admin_username = admin\nadmin_password = a-long-s3cret-password\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    port = free_port()
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config)}
    command = [sys.executable, "-m", "pipeline.cli.tracking_server", "--database", postgres_url, "--artifacts",
               str(tmp_path / "artifacts"), "--port", str(port), "--workers", "1", "--basic-auth"]
    with serving(command, port, tmp_path / "server.log", env=env) as url:
        search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(search, timeout=30)
        assert refused.value.code == 401
        request = urllib.request.Request(search, headers={
            "Authorization": "Basic " + base64.b64encode(b"admin:a-long-s3cret-password").decode()})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200

"""The team server's command stops with one line, and never echoes a password, on a bad database."""
import pytest

from pipeline.errors import PipelineError
from pipeline.tracking_server import ensure_database
from tests.conftest import free_port


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

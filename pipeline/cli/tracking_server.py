"""A team MLflow: a tracking server whose runs live in PostgreSQL and whose artifacts (models,
figures) it stores and serves itself, so clients need only its URL.

    python -m pipeline.cli.tracking_server --database postgresql://mlflow:PASSWORD@db-host:5432/mlflow \\
        --artifacts /srv/mlflow-artifacts --host 0.0.0.0 --port 5000

creates the database if it does not exist, prints the MLFLOW_TRACKING_URI to export on every
machine that runs the pipeline, then runs `mlflow server` in the foreground. `--basic-auth`
turns on MLflow's user names and passwords; anything after `--` goes to `mlflow server` as is
(e.g. `-- --allowed-hosts mlflow.example.org`). A single user needs none of this: the pipeline's
default store is the SQLite file mlflow.db in the repository.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import secrets
import socket
import sys

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pipeline.errors import PipelineError, exits_cleanly

SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"  # the basic-auth app's CSRF key


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database of `url` if it does not exist; True if it was created."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None
    if parsed is None or parsed.get_backend_name() != "postgresql" or not parsed.database:
        shown = re.sub(r":[^:@/]*@", ":***@", url)  # never echo a password
        raise PipelineError(f"--database {shown!r}: expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
    shown = parsed.render_as_string(hide_password=True)
    try:
        # CREATE DATABASE runs outside a transaction, from the server's maintenance database
        connection = psycopg.connect(host=parsed.host, port=parsed.port, user=parsed.username,
                                     password=parsed.password, dbname="postgres", connect_timeout=10,
                                     autocommit=True)
    except psycopg.OperationalError as error:
        raise PipelineError(f"{shown}: cannot connect to PostgreSQL ({' '.join(str(error).split())})") from None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,))
            if cursor.fetchone():
                return False
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(parsed.database)))
            return True
    except psycopg.Error as error:
        raise PipelineError(f"{shown}: cannot create the database ({' '.join(str(error).split())})") from None
    finally:
        connection.close()


def server_command(database: str, artifacts: str, host: str, port: int, workers: int, basic_auth: bool,
                   extra: list[str]) -> list[str]:
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", database,
               "--artifacts-destination", artifacts, "--serve-artifacts", "--host", host, "--port", str(port),
               "--workers", str(workers)]
    if basic_auth:
        command += ["--app-name", "basic-auth"]
    return command + extra


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.cli.tracking_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
    parser.add_argument("--artifacts", required=True,
                        help="where the server stores artifacts: a folder, s3://bucket/path, gs://..., ...")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=4, help="server worker processes")
    parser.add_argument("--basic-auth", action="store_true", help="require MLflow user names and passwords")
    return parser


def check_basic_auth() -> None:
    """Before anything is created: MLflow's basic-auth app needs Flask-WTF and, for its CSRF
    protection, a secret key that every worker of the server shares. Without one set
    (MLFLOW_FLASK_SERVER_SECRET_KEY), this server gets a random key of its own: browser sessions
    then last until it restarts."""
    if importlib.util.find_spec("flask_wtf") is None:
        raise PipelineError("--basic-auth: MLflow's basic-auth app needs Flask-WTF, which is not installed; "
                            "pip install -r requirements.txt")
    if not os.environ.get(SECRET_KEY_ENV):
        os.environ[SECRET_KEY_ENV] = secrets.token_hex(32)
        print(f"{SECRET_KEY_ENV} is not set: a random key for this server's run (set it to keep browser "
              "sessions across restarts)", file=sys.stderr)


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    # only what follows `--` goes to `mlflow server`; any other unknown argument is a usage error
    ours, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = build_parser().parse_args(ours)
    if args.basic_auth:
        check_basic_auth()
    created = ensure_database(args.database)
    shown = make_url(args.database).render_as_string(hide_password=True)
    print(f"{'created' if created else 'using'} database {shown}", file=sys.stderr)
    reachable = socket.getfqdn() if args.host in ("0.0.0.0", "::") else args.host
    print(f"export MLFLOW_TRACKING_URI=http://{reachable}:{args.port}", flush=True)
    if args.basic_auth:
        print("clients also export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD", file=sys.stderr)
    sys.stderr.flush()
    command = server_command(args.database, args.artifacts, args.host, args.port, args.workers, args.basic_auth,
                             extra)
    os.execv(command[0], command)  # the server takes this process: Ctrl-C and signals reach it directly


if __name__ == "__main__":
    main()

"""A team MLflow: a tracking server whose runs live in PostgreSQL and whose artifacts (models,
figures) it stores and serves itself, so clients need only its URL.

    export MLFLOW_AUTH_ADMIN_PASSWORD=...   # the admin user's, made at the first start
    python -m pipeline.cli.tracking_server --database postgresql://mlflow:PASSWORD@db-host:5432/mlflow \\
        --artifacts /srv/mlflow-artifacts --host 0.0.0.0 --port 5000 --basic-auth

creates the database if it does not exist, prints the MLFLOW_TRACKING_URI to export on every
machine that runs the pipeline, then runs `mlflow server` in the foreground. `--basic-auth`
turns on MLflow's user names and passwords. Safe by default: a server that listens beyond this
machine (any --host but a loopback address) needs `--basic-auth`, or `--insecure` to serve every
run to whoever reaches it; and the database URL, password included, reaches `mlflow server`
through its environment (readable only by its owner), never its command line, which `ps` shows
to every user. Anything after `--` goes to `mlflow server` as is (e.g. `-- --allowed-hosts
mlflow.example.org`). A single user needs none of this: the pipeline's default store is the
SQLite file mlflow.db in the repository.

With `--basic-auth` and no MLFLOW_AUTH_CONFIG_PATH of your own, the server runs with
pipeline/cli/basic_auth.ini: MLflow's defaults, and each worker remembers a verified password for
60 s instead of hashing it on every request. MLflow's job runner for its GenAI features stays off
(MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true turns it on).
"""
from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import re
import secrets
import socket
import sys
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pipeline.errors import PipelineError, exits_cleanly

SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"  # the basic-auth app's CSRF key
ADMIN_PASSWORD_ENV, AUTH_CONFIG_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_AUTH_CONFIG_PATH"  # basic-auth's admin
AUTH_SETTINGS = Path(__file__).with_name("basic_auth.ini")  # MLflow's defaults and a credential cache
STORE_ENV = "MLFLOW_BACKEND_STORE_URI"  # `mlflow server --backend-store-uri`, read from the environment
# MLflow 3 also starts a job runner and 7 task consumers for its GenAI features (prompt optimisation,
# scorers), which this pipeline never asks for: about 25 s of CPU and 1.9 GB of memory at each start
# on 2 cores (python -m benchmarks.mlflow_start)
JOBS_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


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


def server_command(artifacts: str, host: str, port: int, workers: int, basic_auth: bool,
                   extra: list[str]) -> list[str]:
    """`mlflow server`'s command line: no database URL in it (STORE_ENV carries it)."""
    command = [sys.executable, "-m", "mlflow", "server", "--artifacts-destination", artifacts, "--serve-artifacts",
               "--host", host, "--port", str(port), "--workers", str(workers)]
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
    parser.add_argument("--insecure", action="store_true",
                        help="listen beyond this machine without --basic-auth: anyone who reaches it reads and "
                             "writes every run")
    return parser


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def check_exposure(host: str, basic_auth: bool, insecure: bool) -> None:
    """A server other machines can reach asks for passwords, unless the user says otherwise."""
    if is_loopback(host) or basic_auth:
        return
    if not insecure:
        raise PipelineError(f"--host {host}: a server that other machines can reach needs --basic-auth (user names "
                            "and passwords); --insecure serves every run to anyone who reaches it")
    print(f"warning: --insecure: anyone who reaches {host} can read and write every run and model",
          file=sys.stderr)


def check_basic_auth() -> None:
    """Before anything is created: MLflow's basic-auth app needs Flask-WTF and, for its CSRF
    protection, a secret key that every worker of the server shares. Without one set
    (MLFLOW_FLASK_SERVER_SECRET_KEY), this server gets a random key of its own: browser sessions
    then last until it restarts."""
    if importlib.util.find_spec("flask_wtf") is None:
        raise PipelineError("--basic-auth: MLflow's basic-auth app needs Flask-WTF, which is not installed; "
                            "pip install -r requirements.txt")
    if not os.environ.get(ADMIN_PASSWORD_ENV) and not os.environ.get(AUTH_CONFIG_ENV):
        raise PipelineError(f"--basic-auth: MLflow ships no admin password; set {ADMIN_PASSWORD_ENV} (the admin "
                            f"user's, made at the first start) or {AUTH_CONFIG_ENV} (an ini file with admin_password)")
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
    check_exposure(args.host, args.basic_auth, args.insecure)
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
    command = server_command(args.artifacts, args.host, args.port, args.workers, args.basic_auth, extra)
    environment = {JOBS_ENV: "false", **os.environ, STORE_ENV: args.database}  # a user's JOBS_ENV wins
    if args.basic_auth:
        environment.setdefault(AUTH_CONFIG_ENV, str(AUTH_SETTINGS))
    # the server takes this process: Ctrl-C and signals reach it directly
    os.execve(command[0], command, environment)


if __name__ == "__main__":
    main()

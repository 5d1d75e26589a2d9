"""What MLflow's GenAI job runner costs at start: `mlflow server` (one worker, as the team server
runs) and `mlflow ui`, each started with MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true and =false,
alternating, on a new SQLite store. For each start: the seconds until /health answers, and over
the first --seconds, the CPU seconds and the summed memory (RSS) of the whole process tree,
polled every 0.5 s. The pipeline's team server and the documented `mlflow ui` turn the runner
off; this is the measurement behind that choice.

    python -m benchmarks.mlflow_start               # 2 rounds of 60 s per setting: about 9 minutes

Writes reports/mlflow_start.json.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from pipeline.errors import exits_cleanly
from pipeline.files import write_json_atomic
from pipeline.layout import REPORTS_DIR
from pipeline.machine import describe_machine

REPORT_FILE = REPORTS_DIR / "mlflow_start.json"
JOBS_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(kind: str, jobs: bool, seconds: float) -> dict:
    """Start `mlflow <kind>` in a new folder, poll its process tree for `seconds`, stop it."""
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        command = [sys.executable, "-m", "mlflow", kind, "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
                   "--host", "127.0.0.1", "--port", str(port)]
        if kind == "server":
            command += ["--workers", "1", "--default-artifact-root", f"{folder}/artifacts"]
        env = {**os.environ, JOBS_ENV: "true" if jobs else "false"}
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        # each process's latest CPU and RSS: a process that ended keeps what it had used
        seen: dict[int, tuple[float, int]] = {}
        started, healthy = time.monotonic(), None
        try:
            while time.monotonic() - started < seconds:
                root = psutil.Process(server.pid)
                for process in [root, *root.children(recursive=True)]:
                    try:
                        seen[process.pid] = (sum(process.cpu_times()[:2]), process.memory_info().rss)
                    except psutil.Error:
                        pass
                if healthy is None:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                        healthy = round(time.monotonic() - started, 1)
                    except OSError:
                        pass
                time.sleep(0.5)
        finally:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    return {"command": f"mlflow {kind}", "job_execution": jobs, "healthy_after_s": healthy,
            "cpu_s": round(sum(cpu for cpu, _ in seen.values()), 1), "processes": len(seen),
            "rss_gib": round(sum(rss for _, rss in seen.values()) / 2**30, 2)}


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mlflow_start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="times each setting is started, alternating")
    parser.add_argument("--seconds", type=float, default=60, help="how long each start is watched")
    args = parser.parse_args(argv)
    runs = [measure(kind, jobs, args.seconds) for _ in range(args.rounds)
            for kind in ("server", "ui") for jobs in (True, False)]
    for run in runs:
        print(json.dumps(run), flush=True)
    report = {"command": " ".join(["python -m benchmarks.mlflow_start", *(argv if argv is not None else sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": describe_machine(),
              "seconds_watched": args.seconds, "runs": runs}
    write_json_atomic(Path(REPORT_FILE), report)


if __name__ == "__main__":
    main()

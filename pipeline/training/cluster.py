"""Where the trainings run: Ray tasks, one per (model, seed).

With no set-up Ray starts inside the driver process, sized to this machine's cores, and runs
cores / train.threads trainings at once (or all of them, when that saves a round: cpus_per_task).
With RAY_ADDRESS set, the same tasks go to that Ray cluster (machines started with `ray start`,
KubeRay, Slurm) and the `pipeline` package travels with them; the driver keeps every file write and
every MLflow call, so workers need neither the repository nor the store.

A worker process runs one training after another, so TensorFlow is imported once per worker, not
once per training (about 9 s of CPU each); its thread pools are fixed by its first training, so
all tasks of one run use the same train.threads. A task asks for a GPU where the cluster has one
(Ray then gives it a fresh worker, which frees the GPU memory TensorFlow holds), and is run again
if its worker dies.
"""
from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


def use_token_auth() -> None:
    """Ray >= 2.52 clusters started with token authentication accept a driver only if it runs with
    RAY_AUTH_MODE=token as well as the token. Given RAY_ADDRESS and a token (RAY_AUTH_TOKEN,
    RAY_AUTH_TOKEN_PATH, or Ray's default ~/.ray/auth_token), turn the mode on, so that the address
    and the token are all a user sets. Ray reads the mode when it is imported: this runs first."""
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if (os.environ.get("RAY_ADDRESS") and "RAY_AUTH_MODE" not in os.environ
            and (os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file())):
        os.environ["RAY_AUTH_MODE"] = "token"


use_token_auth()

import ray  # noqa: E402  (after use_token_auth)
from ray.exceptions import RayTaskError  # noqa: E402
from ray.util.queue import Queue  # noqa: E402

from pipeline.errors import PipelineError  # noqa: E402
from pipeline.params import ClusterParams  # noqa: E402


@dataclass(frozen=True)
class Cluster:
    address: str          # "local" or the RAY_ADDRESS the driver connected to
    cpus: float
    gpus: float
    gpus_per_task: float
    sized_by_user: bool = False  # cluster.local_cpus was set: run exactly cpus / threads at once

    def describe(self) -> str:
        where = "local Ray" if self.address == "local" else f"Ray cluster {self.address}"
        return f"{where}: {self.cpus:g} CPUs, {self.gpus:g} GPUs"


def connect(settings: ClusterParams) -> Cluster:
    """Start local Ray, or join the cluster at RAY_ADDRESS."""
    address = os.environ.get("RAY_ADDRESS")
    # log_to_driver=False: workers report progress through a queue (run_tasks), so their own
    # output (TensorFlow's runtime notices) stays in their log files rather than the terminal
    common = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    # TensorFlow's start-up notices (oneDNN, CPU features) from every worker would bury the progress lines
    quiet = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}}
    if address:
        check_reachable(address)
    try:
        if address:
            import pipeline
            # the workers of a remote cluster get this package (their environment has the requirements)
            within_deadline(lambda: ray.init(address=address, runtime_env={
                "py_modules": [str(Path(pipeline.__file__).parent)], "excludes": ["__pycache__"], **quiet}, **common),
                address)
        else:
            # "local": a Ray of this process's own, even where `ray start` left one running
            ray.init(address="local", num_cpus=settings.local_cpus or os.cpu_count() or 1, runtime_env=quiet,
                     **common)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise PipelineError(f"RAY_ADDRESS={address}: cannot join the Ray cluster ({error})" if address
                            else f"cannot start local Ray ({error})") from None
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0.0)
    per_task = (1.0 if gpus else 0.0) if settings.gpus_per_task == "auto" else float(settings.gpus_per_task)
    if per_task > gpus:  # Ray would wait forever for GPUs that are not there
        ray.shutdown()
        raise PipelineError(f"cluster.gpus_per_task is {settings.gpus_per_task} but the Ray cluster has {gpus:g} "
                            "GPUs; use auto or 0")
    return Cluster(address or "local", resources.get("CPU", 0.0), gpus, per_task, bool(settings.local_cpus))


@dataclass(frozen=True)
class TaskProgress:
    """What a task reports its progress through: the driver's queue, and the task's own key."""
    queue: Queue
    task: str

    def report(self, row: dict) -> None:
        # sent without waiting for the queue's answer: a task blocked in ray.get hands its CPU back
        # to Ray, which then starts another training on it (3 trainings on 2 cores, measured); the
        # queue is unbounded and one caller's calls to an actor arrive in order
        self.queue.actor.put_nowait.remote({"task": self.task, **row})


JOIN_TIMEOUT_ENV = "NER_RAY_TIMEOUT"  # seconds joining a cluster may take (30)


def within_deadline(join: Callable[[], object], address: str) -> None:
    """Run `join` (ray.init), but give up after NER_RAY_TIMEOUT seconds: at a port that answers but
    is not a Ray head (another service, a head still starting), Ray retries without end."""
    try:
        timeout = float(os.environ.get(JOIN_TIMEOUT_ENV, "30"))
    except ValueError:
        timeout = float("nan")
    if not 0 < timeout < float("inf"):  # a zero, negative or NaN deadline would give up before trying
        raise PipelineError(f"{JOIN_TIMEOUT_ENV}={os.environ[JOIN_TIMEOUT_ENV]}: not a positive number of seconds")
    outcome: list = []

    def attempt():
        try:
            outcome.append(join())
        except BaseException as error:  # handed to the caller's thread
            outcome.append(error)

    thread = threading.Thread(target=attempt, daemon=True, name="ray-join")  # daemon: it may never return
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise PipelineError(f"RAY_ADDRESS={address}: no Ray cluster answered within {timeout:g} s (something listens "
                            "there, but not a Ray head node); check the address (ray status --address "
                            f"{address}), set {JOIN_TIMEOUT_ENV}=seconds to wait longer, or unset RAY_ADDRESS to "
                            "train on this machine")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]


def check_reachable(address: str, timeout: float = 10) -> None:
    """A RAY_ADDRESS of the form host:port where nothing listens fails here, naming the address the
    user gave, rather than in Ray's own retries (which do not end, and name the node's own IP)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", ray://...: Ray's own resolution
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise PipelineError(f"RAY_ADDRESS={address}: nothing answers there ({error.strerror or error}); start the "
                            "cluster's head node (ray start --head), or unset RAY_ADDRESS to train on this "
                            "machine") from None


def cpus_per_task(threads: int, tasks: int, cluster: Cluster) -> float:
    """The CPUs each task asks Ray for: its threads, so that cpus / threads tasks run at once; but on
    a local Ray sized to this machine, when the last round would be at most half full (3 one-thread
    trainings on 2 cores: two, then one beside an idle core), a share that starts them all at once
    on the same cores. Each task still runs `threads` threads and computes the same; the whole ends
    sooner (a one-tagger tweak on 2 cores, its 3 seeds at once: 7.5 min instead of 8.9, docs/speed.md)."""
    if cluster.address != "local" or cluster.sized_by_user or cluster.gpus_per_task:
        return threads
    at_once = max(int(cluster.cpus // threads), 1)
    if at_once < tasks <= at_once + at_once // 2:
        return cluster.cpus / tasks
    return threads


def run_tasks(function: Callable, calls: Iterable[tuple[str, tuple]], cpus: int, cluster: Cluster,
              max_retries: int, on_progress: Callable[[dict], None] | None = None) -> Iterator[tuple[str, object]]:
    """Run function(*args) for each (key, args) as a Ray task; yield (key, result) as each finishes.

    With `on_progress`, each task gets a keyword argument `progress`, a TaskProgress it may report
    dicts through (one per epoch, say); the driver hands them, with the task's key, to on_progress
    as they arrive, so progress is printed by one process, in order, whatever node the task runs on.

    A task whose worker dies (killed, out of memory, node lost) is run again up to max_retries
    times; an error raised by the function itself is not retried (the same seed would fail the
    same way) and stops the run: a PipelineError keeps its one-line message.
    """
    if cpus > cluster.cpus and cluster.address == "local":
        raise PipelineError(f"train.threads is {cpus} but local Ray has {cluster.cpus:g} CPUs "
                            "(cluster.local_cpus): no training could start")
    calls = list(calls)
    # Ray's default max_calls: workers are reused by CPU tasks, one per GPU task (see the module's docstring)
    remote = ray.remote(num_cpus=cpus_per_task(cpus, len(calls), cluster), num_gpus=cluster.gpus_per_task,
                        max_retries=max_retries)(function)
    queue = Queue(actor_options={"num_cpus": 0}) if on_progress else None
    pending = {remote.remote(*args, **({"progress": TaskProgress(queue, key)} if queue is not None else {})): key
               for key, args in calls}

    def drain() -> None:
        if queue is not None:
            for item in queue.get_nowait_batch(queue.qsize()):
                on_progress(item)

    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5 if queue is not None else None)
            drain()
            if not ready:
                continue
            done = ready[0]
            key = pending.pop(done)
            try:
                yield key, ray.get(done)
            except RayTaskError as error:
                if isinstance(error.cause, PipelineError):
                    raise PipelineError(f"{key}: {error.cause}") from None
                raise error.as_instanceof_cause() from None
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if queue is not None:
            queue.shutdown()


def put(value) -> ray.ObjectRef:
    """Share a large input (corpus, vocabulary) once with every task, through Ray's object store."""
    return ray.put(value)


def worker_identity() -> dict[str, str]:
    """Where the calling task runs, for the MLflow run's tags: the node, and the worker process (one
    worker trains several pairs in turn)."""
    return {"ray.node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
            "ray.worker_pid": str(os.getpid())}


def shutdown() -> None:
    ray.shutdown()

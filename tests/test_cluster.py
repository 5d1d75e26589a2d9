"""Where trainings run: local Ray's checks that would otherwise leave tasks waiting forever."""
import pytest

from pipeline.errors import PipelineError
from pipeline.params import ClusterParams
from pipeline.training import cluster
from tests.conftest import free_port


def test_asking_for_gpus_the_machine_lacks_stops_with_the_key_named(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    settings = ClusterParams(local_cpus=1, gpus_per_task=1, max_retries=0)
    with pytest.raises(PipelineError, match=r"cluster.gpus_per_task is 1.0 but the Ray cluster has 0 GPUs"):
        cluster.connect(settings)


def test_more_threads_per_training_than_local_cpus_stops_with_the_key_named(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    where = cluster.connect(ClusterParams(local_cpus=1, gpus_per_task="auto", max_retries=0))
    try:
        with pytest.raises(PipelineError, match=r"train.threads is 2 but local Ray has 1 CPUs"):
            next(cluster.run_tasks(print, [("a", ())], 2, where, 0))
    finally:
        cluster.shutdown()


def test_trainings_share_the_cores_when_that_saves_a_round():
    """cores / threads trainings at a time, unless the last round would be at most half full: then
    all at once, on a local Ray sized to the machine (not one the user sized, nor a remote cluster,
    nor with GPUs)."""
    two_cores = cluster.Cluster("local", 2.0, 0.0, 0.0)
    assert [cluster.cpus_per_task(1, tasks, two_cores) for tasks in (1, 2, 3, 4, 5, 9)] == [1, 1, 2 / 3, 1, 1, 1]
    four_cores = cluster.Cluster("local", 4.0, 0.0, 0.0)
    assert [cluster.cpus_per_task(1, tasks, four_cores) for tasks in (4, 5, 6, 7)] == [1, 0.8, 4 / 6, 1]
    assert [cluster.cpus_per_task(2, tasks, four_cores) for tasks in (2, 3, 4)] == [2, 4 / 3, 2]
    assert cluster.cpus_per_task(1, 1, cluster.Cluster("local", 1.0, 0.0, 0.0)) == 1  # one core: no gain
    assert cluster.cpus_per_task(1, 2, cluster.Cluster("local", 1.0, 0.0, 0.0)) == 1
    for elsewhere in (cluster.Cluster("local", 2.0, 0.0, 0.0, sized_by_user=True),
                      cluster.Cluster("127.0.0.1:6379", 2.0, 0.0, 0.0), cluster.Cluster("local", 2.0, 1.0, 1.0)):
        assert cluster.cpus_per_task(1, 3, elsewhere) == 1


@pytest.mark.slow
def test_stopping_the_test_cluster_leaves_another_ray_of_the_machine_running(monkeypatch):
    """The tests' Ray cluster is stopped by its own port: a developer's `dvc repro` (its local Ray)
    running beside the suite survives it (`ray stop` killed it)."""
    import secrets
    import subprocess
    import sys

    import psutil

    from tests.conftest import cluster_processes, start_ray_cluster, stop_ray_cluster
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import ray, time; ray.init(address='local', num_cpus=1, include_dashboard=False); "
         "print('up', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert bystander.stdout.readline().strip() == "up"
        before = psutil.Process(bystander.pid).children(recursive=True)
        assert any("raylet" in " ".join(p.cmdline()) for p in before)
        monkeypatch.setenv("RAY_AUTH_MODE", "token")
        monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
        port = start_ray_cluster()
        cluster = cluster_processes(port)
        assert sum("raylet/raylet" in " ".join(p.cmdline()) for p in cluster) == 2  # the two nodes
        stop_ray_cluster(port)
        assert not any(p.is_running() for p in cluster)
        assert bystander.poll() is None and all(p.is_running() for p in before)
    finally:
        bystander.kill()
        bystander.wait()


def test_a_cluster_address_where_nothing_listens_fails_at_once_naming_it(monkeypatch):
    port = free_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    settings = ClusterParams(local_cpus=1, gpus_per_task="auto", max_retries=0)
    with pytest.raises(PipelineError, match=rf"^RAY_ADDRESS=127.0.0.1:{port}: nothing answers there \(Connection "
                                            r"refused\); start the cluster's head node \(ray start --head\), or "
                                            "unset RAY_ADDRESS"):
        cluster.connect(settings)


def test_a_cluster_address_that_answers_but_is_not_ray_fails_by_the_deadline_naming_it(tmp_path):
    """A port where another service listens: Ray would retry without end (it did for 600 s and
    more); the driver gives up after NER_RAY_TIMEOUT seconds with one line, and the process ends."""
    import os
    import socket
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts connections, never speaks gRPC
        port = listener.getsockname()[1]
        script = ("from pipeline.errors import exits_cleanly\nfrom pipeline.params import ClusterParams\n"
                  "from pipeline.progress import native_stderr_to_log\nfrom pipeline.training.cluster import connect\n"
                  "native_stderr_to_log('train')  # as the train stage: Ray's own notices go to logs/train.log\n"
                  "exits_cleanly(connect)(ClusterParams(local_cpus=1, gpus_per_task='auto', max_retries=0))\n")
        env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}", "NER_RAY_TIMEOUT": "5",
               "PYTHONPATH": str(REPO_ROOT)}
        env.pop("RAY_AUTH_MODE", None)
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                                timeout=120)  # a hang fails here
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: RAY_ADDRESS=127.0.0.1:{port}: no Ray cluster answered within 5 s (something listens there, but not "
        f"a Ray head node); check the address (ray status --address 127.0.0.1:{port}), set NER_RAY_TIMEOUT=seconds "
        "to wait longer, or unset RAY_ADDRESS to train on this machine"]


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan"])
def test_a_join_deadline_that_is_not_a_positive_number_is_named(monkeypatch, value):
    monkeypatch.setenv("NER_RAY_TIMEOUT", value)
    with pytest.raises(PipelineError, match=rf"^NER_RAY_TIMEOUT={value}: not a positive number of seconds$"):
        cluster.within_deadline(lambda: None, "127.0.0.1:6379")

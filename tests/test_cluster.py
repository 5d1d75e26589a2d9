"""Where trainings run: local Ray's checks that would otherwise leave tasks waiting forever."""
import pytest

from pipeline import cluster
from pipeline.errors import PipelineError
from pipeline.params import ClusterParams


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

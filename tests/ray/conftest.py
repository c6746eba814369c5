"""One simulated two-node Ray cluster for the whole session, and a registry on it.

``ray.cluster_utils.Cluster`` starts real Ray nodes (a head with its GCS, and a
second raylet) on this machine; node A offers the custom resource ``node_a``,
node B ``node_b``, so a model that asks for one of them lands on that node. The
test process joins the cluster as its driver; at the end of the session it
leaves and every node process is stopped (Ray keeps its files under /tmp/ray).

The registry (``ray_models``): SmolLM2 (llama.cpp's deterministic mode, one
thread) as ``smol_a`` on node A and ``smol_b`` on node B, the group ``chat`` =
fallback [smol_a, smol_b], ``tight`` (one slot, no queue) on node A, and MiniLM on
node B. Short cooldowns and a quick
health loop let a killed actor come back within the test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from ray_cluster import SimCluster, cluster_config

from smmf_flow.models import ModelRegistry


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def cluster() -> Iterator[SimCluster]:
    """The two-node cluster, joined by this process."""
    import ray  # the ray extra is part of every test install (all)
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized(), "another test left Ray running in this process"
    # no token file in the home folder (Ray keeps everything else under /tmp/ray);
    # subprocesses inherit the setting
    # and actors at the test process's priority (Ray's workers default to niceness 15,
    # which starves them on a machine busy with other work)
    saved = {name: os.environ.get(name) for name in ("RAY_AUTH_MODE", "RAY_worker_niceness")}
    os.environ.update({"RAY_AUTH_MODE": "disabled", "RAY_worker_niceness": "0"})
    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {"node_a": 4}, "include_dashboard": False},
    )
    try:
        nodes.add_node(num_cpus=1, resources={"node_b": 4})
        nodes.wait_for_nodes()
        ray.init(address=nodes.address, log_to_driver=False)
        node_ids = {
            name: node["NodeID"]
            for node in ray.nodes()
            for name in ("node_a", "node_b")
            if node["Alive"] and name in node["Resources"]
        }
        yield SimCluster(nodes.address, node_ids)
    finally:
        ray.shutdown()
        nodes.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
async def ray_models(cluster: SimCluster) -> AsyncIterator[ModelRegistry]:
    """The registry on the cluster, warmed up (every actor loaded)."""
    registry = ModelRegistry.from_dict(cluster_config(cluster.address))
    await registry.warmup()
    yield registry
    await registry.aclose()

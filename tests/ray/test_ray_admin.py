"""Run-time control (the admin API's pool operations) over Ray instances, on the
session's two-node cluster (``conftest.py``): scaling adds an actor on the node
the model's resources name, and removes the one out of service first; a stream
in flight on a stopped instance finishes there, whole. Nothing in the pool
knows the placement: this checks that it needs not."""

from __future__ import annotations

from contextlib import aclosing

import anyio
import pytest
from ray_cluster import SimCluster, smol

from smmf_flow.models import ModelRegistry
from smmf_flow.models.types import ChatRequest

pytestmark = [pytest.mark.anyio, pytest.mark.models]

QUESTION = ChatRequest.of("Name three rivers.", max_tokens=24, temperature=0)


async def test_scale_stop_and_drain_over_ray_actors(cluster: SimCluster) -> None:
    config = {"ray": {"address": cluster.address}, "models": {"llms": [smol("scaled", "node_a")]}}
    async with ModelRegistry.from_dict(config) as registry:
        pool = registry.pool("scaled")
        expected = (await pool.chat(QUESTION)).text

        await pool.scale(2)  # a second actor, on node A like the first
        for instance in pool.stats().instances:
            assert instance.state == "healthy" and instance.placement == "ray"
            assert instance.node is not None
            assert cluster.node_ids["node_a"].startswith(instance.node.split("@")[0])
        served = {(await pool.chat(QUESTION)).instance for _ in range(2)}
        assert served == {"scaled#0", "scaled#1"}

        pieces: list[str] = []
        async with (
            anyio.create_task_group() as group,
            aclosing(pool.stream_chat(QUESTION)) as stream,
        ):
            first = await stream.__anext__()  # in flight on one instance
            pieces.append(first.text)
            busy = next(i for i in pool.instances if i.in_flight)
            group.start_soon(pool.stop_instance, busy.index)
            with anyio.fail_after(30):
                while busy.state != "draining":
                    await anyio.sleep(0.01)
            other = await pool.chat(QUESTION)  # a new call goes elsewhere
            assert other.instance != busy.id and other.text == expected
            async for chunk in stream:
                pieces.append(chunk.text)
        assert "".join(pieces) == expected
        assert busy.state == "stopped"

        await pool.scale(1)  # the stopped instance goes first
        assert [i.id for i in pool.instances] != [busy.id]
        assert pool.status == "ready"
        assert (await pool.chat(QUESTION)).text == expected

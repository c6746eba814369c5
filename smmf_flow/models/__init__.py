"""The SMMF: models configured in TOML, served by pools of backend instances.

``ModelRegistry.from_toml(path)`` reads a config (``ModelRegistry.default()`` the default
one, found by ``default_config()``); ``registry.pool(name)`` gives the pool that serves
a model; ``await pool.chat(ChatRequest.of("hi"))`` answers. A registry is a context
manager (``with`` / ``async with``) that closes its pools.
"""

from smmf_flow.models.backends import Backend, Capabilities, register_backend
from smmf_flow.models.chat_stream import ChatStream
from smmf_flow.models.config import GroupConfig, ModelConfig, ModelsFile, ModelsSection
from smmf_flow.models.defaults import default_config
from smmf_flow.models.events import EventHook, PoolEvent
from smmf_flow.models.instance import Instance, InstanceState, InstanceStats
from smmf_flow.models.loader import interpolate, load_dict, load_toml
from smmf_flow.models.pool import Pool, PoolStats
from smmf_flow.models.registry import ModelRegistry, ModelRow
from smmf_flow.models.strategies import register_strategy
from smmf_flow.models.types import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    JsonSchemaFormat,
    ResponseFormat,
    Usage,
)

__all__ = [
    "Backend",
    "Capabilities",
    "ChatChunk",
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "ChatStream",
    "EmbeddingRequest",
    "EmbeddingResult",
    "EventHook",
    "GroupConfig",
    "Instance",
    "InstanceState",
    "InstanceStats",
    "JsonSchemaFormat",
    "ModelConfig",
    "ModelRegistry",
    "ModelRow",
    "ModelsFile",
    "ModelsSection",
    "Pool",
    "PoolEvent",
    "PoolStats",
    "ResponseFormat",
    "Usage",
    "default_config",
    "interpolate",
    "load_dict",
    "load_toml",
    "register_backend",
    "register_strategy",
]

"""A deterministic chat model for tests of loops that a real model drives.

``Script(make_registry)`` registers the provider ``test/scripted``;
``script.registry(*replies)`` makes a fresh registry whose model ``scripted``
(also the default LLM, and the one member of the fallback group
``scripted-group``) answers with ``replies`` in order (an exception is raised
instead of answered) and keeps what it was sent in ``script.requests``. Shared
by tests/operators (the agent and answer operators) and tests/reliability.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Script:
    """The ``test/scripted`` model's part (see the module doc)."""

    provider = "test/scripted"

    def __init__(self, make_registry: Callable[[dict[str, Any]], Any]) -> None:
        self.make_registry = make_registry
        self.replies: list[Any] = []
        self.requests: list[Any] = []
        _register(self)

    def registry(self, *replies: Any, also: tuple[str, ...] = ()) -> Any:
        """The registry; models named in ``also`` play the same script (a flow
        that names ``smollm2`` can then run on it)."""
        self.replies, self.requests = list(replies), []
        return self.make_registry(
            {
                "models": {
                    "default_llm": "scripted",
                    "llms": [
                        {"name": name, "provider": self.provider, "failure_threshold": 1000}
                        for name in ("scripted", *also)
                    ],
                    "groups": [
                        {"name": "scripted-group", "strategy": "fallback", "members": ["scripted"]}
                    ],
                }
            }
        )


def _register(script: Script) -> None:
    """Register the provider so that its replies come from ``script``."""
    from smmf_flow.models.backends import Backend, Capabilities, register_backend
    from smmf_flow.models.types import ChatRequest, ChatResult, Usage

    class Scripted(Backend):
        provider = Script.provider

        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(chat=True, json_schema=True)

        async def load(self) -> None:
            pass

        async def chat(self, request: ChatRequest) -> ChatResult:
            script.requests.append(request)
            if not script.replies:
                raise AssertionError("the scripted model ran out of replies")
            reply = script.replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return ChatResult(
                text=reply, usage=Usage(10, 5), model=self.config.name, instance=self.instance_id
            )

    register_backend(Script.provider, Scripted)


__all__ = ["Script"]

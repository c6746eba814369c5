"""Backends by provider name (``smmf_flow.models.backends``): third-party ones come
from entry points, and only a ``Backend`` subclass is taken."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

import smmf_flow.models.backends as backends
from smmf_flow.errors import ConfigError
from smmf_flow.models.backends import Backend, backend_class


class PluginBackend(Backend):
    provider = "plugin/good"

    async def load(self) -> None:
        pass


def not_a_backend() -> None:
    """What a typo in an entry point's value may name instead of a class."""


def offer(monkeypatch: pytest.MonkeyPatch, provider: str, value: str) -> None:
    """Make ``provider`` an entry point in the group smmf_flow.backends naming ``value``."""
    point = EntryPoint(name=provider, value=value, group="smmf_flow.backends")

    def entry_points(*, group: str, **selection: Any) -> list[EntryPoint]:
        assert group == "smmf_flow.backends"
        return [point] if selection.get("name", provider) == provider else []

    monkeypatch.setattr(backends, "entry_points", entry_points)
    monkeypatch.setattr(backends, "_registered", {})


def test_an_entry_point_adds_a_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    offer(monkeypatch, "plugin/good", f"{__name__}:PluginBackend")
    assert "plugin/good" in backends.known_providers()
    assert backend_class("plugin/good") is PluginBackend


def test_an_entry_point_that_is_no_backend_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offer(monkeypatch, "plugin/typo", f"{__name__}:not_a_backend")
    with pytest.raises(
        ConfigError,
        match=rf"^provider 'plugin/typo': the entry point '{__name__}:not_a_backend' \(group "
        r"smmf_flow\.backends\) is not a Backend subclass$",
    ):
        backend_class("plugin/typo")
    assert "plugin/typo" not in backends._registered  # nothing half-registered

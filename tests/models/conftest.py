"""Fixtures of the model layer tests: the fake backend, registered for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smmf_flow.models.backends import register_backend

from .fakes import PROVIDER, FakeBackend


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def fake_backend() -> Iterator[type[FakeBackend]]:
    """``test/fake`` serves models in every test; its class-level records start empty."""
    register_backend(PROVIDER, FakeBackend)
    FakeBackend.load_errors.clear()
    FakeBackend.loads.clear()
    FakeBackend.load_delay = 0.0
    yield FakeBackend
    FakeBackend.load_errors.clear()
    FakeBackend.loads.clear()
    FakeBackend.load_delay = 0.0

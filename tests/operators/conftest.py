import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Session-wide, so that the session's real models serve every test."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _async_fixtures_for_sync_tests(anyio_backend: str) -> None:
    """Lets plain tests use async fixtures such as ``real_registry`` too."""

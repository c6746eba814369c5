import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Session-wide, so that the session's real models serve every test."""
    return "asyncio"

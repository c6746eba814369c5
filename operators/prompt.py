"""``PromptOperator``: a jinja2 template (sandboxed) rendered from the input
mapping into a chat request.

Templates are compiled when the node is made, so a syntax error stops the flow
before it runs (a ``TemplateError`` whose ``param`` names the template); a
variable the input lacks is an ``InputError`` naming the variable and what the
input has, never a silently empty prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
from pydantic import Field, model_validator

from smmf_flow.dag import Operator, RunContext
from smmf_flow.errors import InputError, SmmfError, TemplateError, located
from smmf_flow.models.types import ChatMessage, ChatRequest, Role
from smmf_flow.operators.params import (
    FormatParams,
    OperatorParams,
    SamplingParams,
    configure,
    custom,
)
from smmf_flow.sandbox import evaluation_error, make_sandbox

_ENV = make_sandbox(keep_trailing_newline=False)


class MessageTemplate(OperatorParams):
    """One message of a prompt: its role and its content, a template."""

    role: Role
    content: str


class PromptParams(SamplingParams, FormatParams):
    """``prompt``: the user message ``template``, a ``system`` template and/or
    ``messages`` templates, and the generation parameters the request carries."""

    template: str | None = None
    system: str | None = None
    messages: list[MessageTemplate] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _something_to_say(self) -> PromptParams:
        if not (self.template or self.system or self.messages):
            raise custom("prompt", "give a template, a system prompt or messages")
        return self


class PromptOperator(Operator):
    """Render ``template`` (the user message) and optional ``system`` and
    ``messages`` templates into a ``ChatRequest`` carrying generation params."""

    kind = "prompt"
    params_model = PromptParams

    def __init__(self, template: str | None = None, **params: Any) -> None:
        self.config, options = configure(PromptParams, self.kind, {"template": template, **params})
        parts: list[tuple[Role, str, str]] = []
        if self.config.system:
            parts.append(("system", "system", self.config.system))
        for i, message in enumerate(self.config.messages or []):
            parts.append((message.role, f"messages.{i}.content", message.content))
        if self.config.template:
            parts.append(("user", "template", self.config.template))
        with located(node=options.get("name")):
            self._compiled = [
                (role, param, text, _compile(text, param)) for role, param, text in parts
            ]
        self._reads = {name: param for _, param, text in parts for name in _names_read(text)}
        self.generation = self.config.request_fields()
        if self.config.format() is not None:
            self.generation["response_format"] = self.config.format()
        super().__init__(**options)

    def params(self) -> dict[str, Any]:
        return self.config.exported()

    def reads_inputs(self) -> dict[str, str]:
        """The variables the templates read, each with the parameter that reads it: a
        flow checks those of a first node against its declared inputs before it runs."""
        return dict(self._reads)

    def render(self, variables: Mapping[str, Any] | str) -> ChatRequest:
        """The request for ``variables`` (a string is available as ``input``)."""
        scope = dict(variables) if isinstance(variables, Mapping) else {}
        scope.setdefault("input", variables)
        messages = []
        for role, param, source, template in self._compiled:
            try:
                content = template.render(scope)
            except jinja2.UndefinedError as exc:
                raise InputError(
                    f"template variable missing: {exc.message} (the input has: "
                    f"{', '.join(sorted(map(str, scope))) or 'nothing'})"
                ) from None
            except jinja2.exceptions.SecurityError as exc:
                raise InputError(f"the template refused to render: {exc}") from None
            except SmmfError:
                raise
            except Exception as exc:
                raise evaluation_error(param, source, exc) from exc
            messages.append(ChatMessage(role=role, content=content))
        return ChatRequest(messages=messages, **self.generation)

    async def execute(self, ctx: RunContext, variables: Mapping[str, Any] | str) -> ChatRequest:
        return self.render(variables)


def _names_read(text: str) -> set[str]:
    """The variables ``text`` reads from its input: not ``input`` (always there), the
    sandbox's globals, or a name only tested with ``is defined`` (an optional one)."""
    tree = _ENV.parse(text)
    tested = {
        test.node.name
        for test in tree.find_all(jinja2.nodes.Test)
        if test.name in ("defined", "undefined") and isinstance(test.node, jinja2.nodes.Name)
    }
    return jinja2.meta.find_undeclared_variables(tree) - tested - set(_ENV.globals) - {"input"}


def _compile(text: str, param: str) -> jinja2.Template:
    try:
        return _ENV.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error on line {exc.lineno}: {exc.message}", param=param
        ) from None


__all__ = ["MessageTemplate", "PromptOperator", "PromptParams"]

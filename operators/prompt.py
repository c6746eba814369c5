"""``PromptOperator``: a jinja2 template (sandboxed) rendered from the input
mapping into a chat request.

Templates are compiled when the node is made, so a syntax error stops the flow
before it runs; a variable the input lacks is an error naming the variable and
the node, never a silently empty prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2

from smmf_flow.dag.operator import Operator
from smmf_flow.dag.ports import Signature
from smmf_flow.errors import TemplateError
from smmf_flow.models.types import ChatMessage, ChatRequest
from smmf_flow.operators.params import check_params, export_params
from smmf_flow.sandbox import make_sandbox

_ENV = make_sandbox(keep_trailing_newline=False)


class PromptOperator(Operator):
    """Render ``template`` (the user message) and optional ``system`` and
    ``messages`` templates into a ``ChatRequest`` carrying generation params."""

    kind = "prompt"

    def __init__(self, template: str | None = None, *, system: str | None = None,
                 messages: list[dict[str, str]] | None = None, name: str | None = None,
                 **params: Any) -> None:
        owner = f"prompt '{name}'" if name else "PromptOperator"
        generation = {k: v for k, v in params.items()
                      if k not in ("timeout", "retry", "dag", "input_type", "output_type")}
        options = {k: v for k, v in params.items() if k not in generation}
        self.template, self.system, self.messages = template, system, messages
        self.generation = check_params(owner, generation)
        parts: list[tuple[str, str]] = []
        if system:
            parts.append(("system", system))
        for message in messages or []:
            if set(message) != {"role", "content"}:
                raise TemplateError(f"{owner}: each message needs exactly 'role' and "
                                    f"'content', got {sorted(message)}")
            parts.append((message["role"], message["content"]))
        if template:
            parts.append(("user", template))
        if not parts:
            raise TemplateError(f"{owner}: give a template, a system prompt or messages")
        self._compiled = [(role, _compile(text, owner)) for role, text in parts]
        super().__init__(name=name, **options)

    def ports(self) -> Signature:
        return Signature((Mapping[str, Any] | str,), False, ChatRequest)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"template": self.template, "system": self.system,
                               "messages": self.messages}
        out.update(export_params(self.generation))
        return {k: v for k, v in out.items() if v is not None}

    def render(self, variables: Mapping[str, Any] | str) -> ChatRequest:
        """The request for ``variables`` (a string is available as ``input``)."""
        scope = dict(variables) if isinstance(variables, Mapping) else {}
        scope.setdefault("input", variables)
        messages = []
        for role, template in self._compiled:
            try:
                content = template.render(scope)
            except jinja2.UndefinedError as exc:
                raise TemplateError(f"prompt '{self.name}': template variable missing: "
                                    f"{exc.message} (input has: "
                                    f"{', '.join(sorted(scope)) or 'nothing'})") from None
            except jinja2.exceptions.SecurityError as exc:
                raise TemplateError(f"prompt '{self.name}': unsafe template: {exc}") from None
            messages.append(ChatMessage(role=role, content=content))  # type: ignore[arg-type]
        return ChatRequest(messages=messages, **self.generation)

    async def execute(self, ctx: Any, *inputs: Any) -> ChatRequest:
        return self.render(inputs[0])


def _compile(text: str, owner: str) -> jinja2.Template:
    try:
        return _ENV.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{owner}: template syntax error on line {exc.lineno}: "
                            f"{exc.message}") from None

"""``AnswerOperator``: retrieved passages and a question in, a cited answer out.

The passages are numbered into a prompt (a jinja2 template, sandboxed), and the
model must answer as JSON ``{"answer": ..., "sources": [n, ...]}`` under a JSON
schema whose source numbers can only be the passages it was shown (a grammar
on llama.cpp, ``response_format`` on OpenAI-compatible backends). So the
citations are never invented: each maps back to a chunk id, and through it to
a source file and character offsets.

The ``Answer`` always carries the text, the cited chunk ids and the files they
come from (``sources``). The passages themselves (full texts, scores, metadata)
only when the node asks for them (``passages=True``): a served flow returns its
output as JSON, and what the retriever found is the flow author's to publish,
not every caller's to read.

The reply's shape is ``reply_schemas.answer_schema``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import meta
from pydantic import Field

from smmf_flow.dag import RunContext
from smmf_flow.errors import (
    InputError,
    InvalidOutput,
    RunError,
    SmmfError,
    TemplateError,
    located,
)
from smmf_flow.models.types import ChatMessage, ChatRequest, ResponseFormat
from smmf_flow.operators.params import Flag
from smmf_flow.operators.reply_schemas import (
    StructuredChatOperator,
    StructuredParams,
    answer_schema,
)
from smmf_flow.operators.retriever import Retrieval
from smmf_flow.operators.vectorstore import Hit
from smmf_flow.sandbox import evaluation_error, make_sandbox

SYSTEM = (
    "You answer questions using only the numbered passages you are given. Reply in "
    "JSON: a short answer, and the numbers of the passages the answer is based on."
)
TEMPLATE = (
    "Passages:\n{% for p in passages %}[{{ p.n }}] ({{ p.source }}) {{ p.text }}\n"
    "{% endfor %}\nQuestion: {{ question }}"
)
NO_CONTEXT = "The indexed documents have no passage about this question."
#: the variables an answer template may use
VARIABLES = frozenset({"question", "passages"})

_ENV = make_sandbox()


@dataclass(frozen=True, slots=True)
class Answer:
    """The model's answer, the ids of the chunks it cites, the files those come from
    (in citation order, once each), and, if the node asked, every passage shown."""

    text: str
    citations: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)
    model: str = ""


def cited_sources(citations: list[str], hits: list[Hit]) -> list[str]:
    """The display sources of the cited chunks, in citation order, once each."""
    by_id = {h.id: h.source for h in hits}
    return list(dict.fromkeys(by_id[c] for c in citations if c in by_id))


class AnswerParams(StructuredParams):
    """``answer``: the model, the prompt (``template``, ``system``), the longest
    answer (``max_chars``), the answer when nothing was retrieved
    (``no_context``), and whether the passages go into the output (``passages``)."""

    max_tokens: int | None = Field(default=200, ge=1)
    template: str = TEMPLATE
    system: str | None = SYSTEM
    max_chars: int = Field(default=400, ge=1)
    no_context: str = NO_CONTEXT
    passages: Flag = False


class AnswerOperator(StructuredChatOperator):
    """Answer a ``Retrieval`` with ``model`` (a model or group name), citing chunks.

    ``template`` renders the user message from ``question`` and ``passages``
    (each with ``n``, ``id``, ``text``, ``source``, ``score``); ``system`` is the
    system message; ``max_chars`` caps the answer; other keyword arguments are
    sampling parameters (``max_tokens``, ``temperature``, ...). With no
    passages the model is not called and the answer is ``no_context``.
    ``passages=True`` puts the passages shown into the answer (see the module doc).
    """

    kind = "answer"
    params_model = AnswerParams
    config: AnswerParams

    def __init__(self, model: str | None = None, **params: Any) -> None:
        super().__init__(model, **params)
        self.template, self.system = self.config.template, self.config.system
        self.max_chars, self.no_context = self.config.max_chars, self.config.no_context
        self.passages = self.config.passages
        with located(node=params.get("name"), param="template"):
            self._template = _compile(self.template)

    def request(self, retrieval: Retrieval) -> ChatRequest:
        """The chat request that asks for a cited answer to ``retrieval``."""
        passages = [
            {"n": i, "id": h.id, "text": h.text, "source": h.source, "score": h.score}
            for i, h in enumerate(retrieval.hits, start=1)
        ]
        try:
            user = self._template.render(question=retrieval.question, passages=passages)
        except jinja2.UndefinedError as exc:
            raise RunError(
                f"answer template: {exc.message} (variables: question, passages; "
                "each passage has n, id, text, source, score)"
            ) from None
        except SmmfError:
            raise
        except Exception as exc:
            raise evaluation_error("template", self.template, exc) from exc
        messages = [ChatMessage(role="system", content=self.system)] if self.system else []
        messages.append(ChatMessage(role="user", content=user))
        schema = answer_schema(len(passages), self.max_chars)
        return ChatRequest(
            messages=messages,
            **self.generation,
            response_format=ResponseFormat.from_schema(schema, name="answer"),
        )

    async def execute(self, ctx: RunContext, retrieval: Retrieval) -> Answer:
        if not isinstance(retrieval, Retrieval):
            raise InputError(f"expected the output of a retriever, got {type(retrieval).__name__}")
        note = self.noter(ctx)
        if not retrieval.hits:
            note("no_context", question=retrieval.question)
            return Answer(self.no_context)
        result = await self.worker(ctx).chat(self.request(retrieval), note)
        reply = parse_reply(result.text, len(retrieval.hits), result.model or self.model)
        cited = [retrieval.hits[n - 1].id for n in dict.fromkeys(reply["sources"])]
        note("answered", model=result.model, citations=cited)
        shown = list(retrieval.hits) if self.passages else []
        return Answer(
            reply["answer"].strip(),
            cited,
            cited_sources(cited, retrieval.hits),
            shown,
            result.model,
        )


def _compile(template: str) -> jinja2.Template:
    """The answer template compiled; it may use only ``question`` and ``passages``."""
    try:
        unknown = sorted(meta.find_undeclared_variables(_ENV.parse(template)) - VARIABLES)
        if unknown:
            raise TemplateError(
                f"the template uses {', '.join(map(repr, unknown))}; its "
                f"variables are {', '.join(sorted(VARIABLES))}"
            )
        return _ENV.from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error on line {exc.lineno}: {exc.message}") from None


def parse_reply(text: str, passages: int, model: str | None) -> dict[str, Any]:
    """The reply as data; ``InvalidOutput`` if it breaks the answer schema (a backend
    without constrained decoding can return anything)."""
    import json

    try:
        reply: dict[str, Any] = json.loads(text)  # checked below: a dict of the right shape
    except json.JSONDecodeError as exc:
        raise InvalidOutput(
            f"model '{model}' answered with invalid JSON ({exc.msg}): "
            f"{text[:80]!r}; use a model with JSON-schema support or a "
            "fallback group",
            model=model,
        ) from None
    ok = (
        isinstance(reply, dict)
        and isinstance(reply.get("answer"), str)
        and isinstance(reply.get("sources"), list)
        and all(isinstance(n, int) and 1 <= n <= passages for n in reply["sources"])
    )
    if not ok:
        raise InvalidOutput(
            f"model '{model}' answered {text[:80]!r}, which is not "
            f"{{answer, sources: [1..{passages}]}}",
            model=model,
        )
    return reply


__all__ = ["Answer", "AnswerOperator", "cited_sources", "parse_reply"]

"""Routing: choose a model per request from ordered rules.

A rule (``Route``) names a model and the conditions (``When``) a request must
meet: prompt length in that model's tokens, whether prompt plus answer fit its
context window, a regex or keywords in the prompt, metadata tags, whether
structured output was asked for, or the label a classifier model gave. The
first rule that holds wins; each decision is noted with its reason.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from smmf_flow.errors import FlowError, InputError, InvalidOutput
from smmf_flow.models.backends.base import Capabilities
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult, ResponseFormat
from smmf_flow.scheduler.workers import ChatWorker, Note, check_structured, no_note
from smmf_flow.timed_regex import RegexTimeout, check, search


class When(BaseModel):
    """Conditions of a rule; all that are set must hold."""

    model_config = ConfigDict(extra="forbid")
    min_prompt_tokens: int | None = Field(default=None, ge=0)
    max_prompt_tokens: int | None = Field(default=None, ge=0)
    fits_context: bool | None = None
    regex: str | None = None
    keywords: list[str] | None = None
    tags: dict[str, Any] | None = None
    structured: bool | None = None
    label: str | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            check(value)
        return value


class Route(BaseModel):
    """Send requests meeting ``when`` to ``model``."""

    model_config = ConfigDict(extra="forbid")
    model: str
    when: When = Field(default_factory=When)


class Classifier(BaseModel):
    """Ask ``model`` to label the request with one of ``labels``."""

    model_config = ConfigDict(extra="forbid")
    model: str
    labels: list[str] = Field(min_length=2)
    instruction: str = "Classify the user's request. Answer with one label."


def prompt_text(request: ChatRequest) -> str:
    """The text rules look at: every user message, joined."""
    return "\n".join(m.content for m in request.messages if m.role == "user")


def needs_tokens(when: When) -> bool:
    """Whether checking ``when`` needs the prompt's length in tokens."""
    return (
        when.min_prompt_tokens is not None
        or when.max_prompt_tokens is not None
        or when.fits_context is not None
    )


def check_rule(
    when: When, request: ChatRequest, *, tokens: int, window: int, label: str | None
) -> tuple[bool, str]:
    """Whether ``request`` (``tokens`` long in the rule's model, whose context
    window is ``window``) meets ``when``, and why (or why not). The regex runs on
    the caller's text, so it has a time limit (``RegexTimeout``)."""
    reasons: list[str] = []
    if when.min_prompt_tokens is not None:
        if tokens < when.min_prompt_tokens:
            return False, f"prompt {tokens} tokens < {when.min_prompt_tokens}"
        reasons.append(f"prompt {tokens} tokens >= {when.min_prompt_tokens}")
    if when.max_prompt_tokens is not None:
        if tokens > when.max_prompt_tokens:
            return False, f"prompt {tokens} tokens > {when.max_prompt_tokens}"
        reasons.append(f"prompt {tokens} tokens <= {when.max_prompt_tokens}")
    if when.fits_context is not None:
        need = tokens + (request.max_tokens or 0)
        fits = need <= window
        if fits != when.fits_context:
            return False, f"needs {need} tokens, window {window}"
        reasons.append(f"needs {need} tokens, window {window}")
    text = prompt_text(request)
    if when.regex is not None:
        if not search(when.regex, text):
            return False, f"no match for /{when.regex}/"
        reasons.append(f"matches /{when.regex}/")
    if when.keywords:
        found = [k for k in when.keywords if k.lower() in text.lower()]
        if not found:
            return False, "no keyword"
        reasons.append(f"keyword {found[0]!r}")
    if when.tags:
        for key, value in when.tags.items():
            if request.metadata.get(key) != value:
                return False, f"tag {key}={request.metadata.get(key)!r}"
        reasons.append("tags " + ", ".join(f"{k}={v!r}" for k, v in when.tags.items()))
    if when.structured is not None:
        structured = request.response_format is not None and request.response_format.type != "text"
        if structured != when.structured:
            return False, f"structured output {'asked' if structured else 'not asked'}"
        reasons.append("structured output" if structured else "free text")
    if when.label is not None:
        if label != when.label:
            return False, f"label {label!r}"
        reasons.append(f"classified as {label!r}")
    return True, "; ".join(reasons) or "always"


class RouteWorker(ChatWorker):
    """Picks one of several workers per request, then delegates to it."""

    def __init__(
        self,
        name: str,
        routes: list[tuple[Route, ChatWorker]],
        default: ChatWorker | None = None,
        classifier: tuple[Classifier, ChatWorker] | None = None,
    ) -> None:
        if not routes and default is None:
            raise FlowError(f"router '{name}' has no routes and no default")
        self.name = name
        self.routes = routes
        self.default = default
        self.classifier = classifier

    @property
    def _workers(self) -> list[ChatWorker]:
        return [w for _, w in self.routes] + ([self.default] if self.default else [])

    @property
    def context_length(self) -> int:
        return max(w.context_length for w in self._workers)

    @property
    def capabilities(self) -> Capabilities:
        return self._workers[0].capabilities

    @property
    def in_cooldown(self) -> bool:
        return all(w.in_cooldown for w in self._workers)

    async def classify(self, request: ChatRequest, note: Note) -> str | None:
        """The classifier's label for ``request`` (None without a classifier)."""
        if self.classifier is None:
            return None
        spec, worker = self.classifier
        schema = {
            "type": "object",
            "properties": {"label": {"enum": spec.labels}},
            "required": ["label"],
        }
        ask = ChatRequest.of(
            f"{spec.instruction}\nLabels: {', '.join(spec.labels)}\n\n"
            f"Request: {prompt_text(request)}",
            max_tokens=32,
            temperature=0.0,
            response_format=ResponseFormat.from_schema(schema, "label"),
        )
        try:
            result = await worker.chat(ask, note)
        except InvalidOutput as error:  # an answer that is no label: route without one
            note("route_classifier", model=worker.name, label=None, raw=str(error)[:120])
            return None
        try:
            label: str = check_structured(result.text, ask, worker.name)["label"]  # an enum
        except (InvalidOutput, KeyError, TypeError):
            note("route_classifier", model=worker.name, label=None, raw=result.text[:80])
            return None
        note("route_classifier", model=worker.name, label=label)
        return label

    async def choose(self, request: ChatRequest, note: Note = no_note) -> ChatWorker:
        """The worker for ``request``; notes the decision and its reason."""
        label = await self.classify(request, note)
        for index, (route, worker) in enumerate(self.routes):
            tokens = await worker.prompt_tokens(request) if needs_tokens(route.when) else 0
            try:
                ok, reason = check_rule(
                    route.when, request, tokens=tokens, window=worker.context_length, label=label
                )
            except RegexTimeout as exc:  # the prompt cannot be routed: refused, not skipped
                raise InputError(f"router '{self.name}' rule {index}: {exc}") from None
            if ok:
                note("route", model=worker.name, rule=index, reason=reason)
                return worker
        if self.default is None:  # this request's fault as much as the router's: a 4xx
            raise InputError(
                f"router '{self.name}': no rule matched and there is no default "
                "model; add `default=` or a rule without conditions"
            )
        note("route", model=self.default.name, rule="default", reason="no rule matched")
        return self.default

    async def chat(self, request: ChatRequest, note: Note = no_note) -> ChatResult:
        worker = await self.choose(request, note)
        return await worker.chat(request, note)

    async def stream(
        self, request: ChatRequest, note: Note = no_note, *, chunk_timeout: float | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        worker = await self.choose(request, note)
        async with aclosing(worker.stream(request, note, chunk_timeout=chunk_timeout)) as chunks:
            async for chunk in chunks:
                yield chunk

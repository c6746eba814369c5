"""``AgentOperator``: a tool-use loop on a model named like any other.

Each step sends the conversation to the model (a model, or a fallback/route
group: the name is resolved by the scheduler, so routing and fallback apply)
and requires one JSON object back, constrained by a schema built from the
tools::

    {"tool": "<name>", "arguments": {...}}    call a tool
    {"final": "<answer>"}                      finish

On llama.cpp the schema becomes a grammar, so the model can only write a known
tool name with arguments of the right shape; on OpenAI-compatible backends it
is the ``response_format``. The loop then:

* runs the tool (its own timeout, or the agent's ``tool_timeout``) and feeds
  the result back; a failure (bad arguments, an exception, a timeout) is fed
  back as the result, so the model can correct itself;
* feeds back output that breaks the schema (possible where decoding is not
  constrained, or when ``max_tokens`` cuts the JSON short), counting it;
* stops at ``{"final": ...}``.

An agent always ends with an answer (where decoding is constrained). The last
allowed step, and every step after a repeated identical call, is constrained to
``{"final": ...}`` alone: a small model that calls the same tool with the same
arguments again and again (SmolLM2 does) would otherwise run out of steps. A
repeated call is not run again; the model gets the earlier result back and is
told to answer. Only where the backend cannot enforce the schema, and the model
still breaks it on the last step, does the loop end in a ``RunError``.

With ``tool_choice="required"`` (OpenAI's name for it) the final answer is not
in the schema until a tool call has succeeded: the model must use a tool
first. Small models otherwise tend to answer at once from their own (wrong)
knowledge. The last step is the exception: it allows only a final answer,
whether or not a tool call worked, so the run still ends with one (and a
repeated call that failed keeps the schema to tool calls until then).

Every step, whatever its kind, is an ``agent_step`` event in the node's trace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, field_validator

from smmf_flow.dag import RunContext
from smmf_flow.errors import InvalidOutput, RunError, ToolFailed, located
from smmf_flow.models.types import ChatMessage, ChatRequest, ResponseFormat
from smmf_flow.operators.input_keys import KEYED, reads, text
from smmf_flow.operators.params import custom
from smmf_flow.operators.reply_schemas import (
    StructuredChatOperator,
    StructuredParams,
    final_schema,
    step_schema,
)
from smmf_flow.operators.tools import Tool, result_text, tool_ref, toolset

StepKind = Literal["tool", "final", "invalid"]
ToolChoice = Literal["auto", "required"]
#: what a step's schema lets the model write: a tool call or a final answer, a
#: tool call only, or a final answer only
Allowed = Literal["any", "tool", "final"]
#: a tool: a ``Tool`` or a typed function in Python, ``module:name`` in a flow file
ToolRef = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
            "description": "module:name of a @tool in a plugin module",
        }
    ),
]

SYSTEM = """You solve the user's task step by step with tools.

Tools:
{tools}

Reply with exactly one JSON object each turn: a tool call as shown above, or
{"final": "your answer"} when you can answer. After a tool call you get its result."""

FINAL_NUDGE = '\n\nNo more tool calls now: reply with your final answer, {"final": "your answer"}.'


@dataclass(frozen=True, slots=True)
class AgentStep:
    """One model call of the loop and what came of it."""

    n: int
    kind: StepKind
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    result: str | None = None
    error: str | None = None
    final: str | None = None
    model: str = ""
    #: what the step's schema allowed (``Allowed``)
    allowed: Allowed = "any"
    #: a tool call identical to an earlier one: not run again, its result reused
    repeated: bool = False


@dataclass(frozen=True, slots=True)
class AgentResult:
    """The final answer and every step that led to it."""

    final: str
    steps: list[AgentStep] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        """Model replies that broke the step schema."""
        return sum(1 for s in self.steps if s.kind == "invalid")

    @property
    def tool_calls(self) -> list[AgentStep]:
        return [s for s in self.steps if s.kind == "tool"]


#: placeholder argument values by JSON type, where a parameter gives no example
_PLACEHOLDER = {
    "string": "text",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "array": [],
    "object": {},
}


def _example(spec: dict[str, Any]) -> Any:
    """An argument value to show: the parameter's example, its default, or a placeholder."""
    if spec.get("examples"):
        return spec["examples"][0]
    if "default" in spec:
        return spec["default"]
    return _PLACEHOLDER.get(spec.get("type", ""), "")


def describe_tools(tools: Mapping[str, Tool]) -> str:
    """Each tool for the system prompt: its description, then a complete example
    call. Small models copy the shape of an example far more reliably than they
    follow a description of it (without one, SmolLM2 leaves strings unclosed)."""
    lines = []
    for name, item in tools.items():
        props = item.schema().get("properties", {})
        example = {p: _example(spec) for p, spec in props.items()}
        call = json.dumps({"tool": name, "arguments": example}, ensure_ascii=False)
        lines.append(f"- {name}: {item.description}\n  call: {call}")
    return "\n".join(lines)


class AgentParams(StructuredParams):
    """``agent``: the model, the ``tools``, ``max_steps``, the limits on a tool call
    (``tool_timeout``) and on text (``final_chars``, ``result_chars``), the
    ``system`` prompt (with ``{tools}``), ``tool_choice`` and ``input_key``."""

    max_tokens: int | None = Field(default=160, ge=1)
    tools: list[ToolRef] = Field(min_length=1)
    max_steps: int = Field(default=6, ge=1)
    tool_timeout: float = Field(default=30.0, gt=0)
    final_chars: int = Field(default=400, ge=1)
    result_chars: int = Field(default=1500, ge=1)
    system: str = SYSTEM
    tool_choice: ToolChoice = "auto"
    input_key: str | None = None

    @field_validator("system")
    @classmethod
    def _has_tools(cls, system: str) -> str:
        if "{tools}" not in system:
            raise custom(
                "system", "the system prompt must contain {tools}, where the tool list goes"
            )
        return system


class AgentOperator(StructuredChatOperator):
    """Solve the input task with ``tools`` on ``model`` (a model or group name).

    ``max_steps`` bounds the model calls; ``tool_timeout`` bounds each tool call
    (seconds); ``final_chars`` caps the final answer; ``tool_choice="required"``
    makes the model call a tool before it may answer; ``system`` replaces the
    system prompt (``{tools}`` is replaced by the tool list); other keyword
    arguments are sampling parameters (``max_tokens``, ``temperature``, ...).
    Input: the task as a string; with ``input_key`` a mapping holding it there.
    """

    kind = "agent"
    params_model = AgentParams
    config: AgentParams

    def __init__(self, model: str | None = None, **params: Any) -> None:
        if params.get("input_key"):
            params.setdefault("input_type", KEYED)
        super().__init__(model, **params)
        config = self.config
        with located(node=params.get("name"), param="tools"):
            self.tools = toolset(config.tools)
        self.max_steps, self.tool_timeout = config.max_steps, config.tool_timeout
        self.final_chars, self.result_chars = config.final_chars, config.result_chars
        self.system, self.tool_choice = config.system, config.tool_choice
        self.input_key = config.input_key
        self.schema = step_schema(self.tools, self.final_chars)
        self.tool_schema = step_schema(self.tools, self.final_chars, final=False)
        self.final_schema = final_schema(self.final_chars)
        self._formats: dict[Allowed, ResponseFormat] = {
            "any": ResponseFormat.from_schema(self.schema, name="agent_step"),
            "tool": ResponseFormat.from_schema(self.tool_schema, name="agent_tool_call"),
            "final": ResponseFormat.from_schema(self.final_schema, name="agent_final"),
        }
        self._system_text = self.system.replace("{tools}", describe_tools(self.tools))

    def reads_inputs(self) -> dict[str, str]:
        """The flow input a first node reads (checked before a flow runs)."""
        return reads(self.input_key)

    def params(self) -> dict[str, Any]:
        out = self.config.model_dump(exclude_defaults=True, by_alias=True, exclude={"tools"})
        with located(node=self.name, param="tools"):
            return {**out, "tools": [tool_ref(t) for t in self.tools.values()]}

    async def execute(self, ctx: RunContext, task: str) -> AgentResult:
        asked = text(task, self.input_key, "task")
        worker, note = self.worker(ctx), self.noter(ctx)
        messages = [
            ChatMessage(role="system", content=self._system_text),
            ChatMessage(role="user", content=asked),
        ]
        steps: list[AgentStep] = []
        calls: dict[str, AgentStep] = {}  # the first run of each distinct tool call
        answer_now = False  # a call was repeated: only a final answer next
        for n in range(1, self.max_steps + 1):
            allowed = self.allowed(n, steps, answer_now)
            shown = _nudged(messages) if allowed == "final" else messages
            request = ChatRequest(
                messages=shown, **self.generation, response_format=self._formats[allowed]
            )
            try:
                result = await worker.chat(request, note)
                reply = self.parse(result.text, allowed)
            except InvalidOutput as exc:
                step = AgentStep(
                    n, "invalid", error=str(exc), model=exc.model or "", allowed=allowed
                )
                messages.append(
                    ChatMessage(
                        role="user",
                        content=(
                            f"Your reply was not valid: {exc}. Reply with one JSON object: a tool "
                            'call {"tool": ..., "arguments": {...}} or {"final": ...}.'
                        ),
                    )
                )
            else:
                if "final" in reply:
                    step = AgentStep(
                        n, "final", final=reply["final"], model=result.model, allowed=allowed
                    )
                    steps.append(step)
                    note("agent_step", **asdict(step))
                    return AgentResult(reply["final"], steps)
                key = json.dumps([reply["tool"], reply["arguments"]], sort_keys=True)
                earlier = calls.get(key)
                if earlier is None:
                    step = calls[key] = await self._call(n, reply, ctx, result.model, allowed)
                else:
                    step = replace(earlier, n=n, model=result.model, allowed=allowed, repeated=True)
                messages += [
                    ChatMessage(role="assistant", content=result.text),
                    ChatMessage(role="user", content=_feedback(step)),
                ]
            steps.append(step)
            note("agent_step", **asdict(step))
            answer_now = answer_now or (step.repeated and self._may_answer(steps))
        last = steps[-1]
        raise RunError(
            f"agent '{self.name}' made {self.max_steps} steps without a final "
            f"answer (tool calls: {sum(s.kind == 'tool' for s in steps)}, invalid "
            f"replies: {sum(s.kind == 'invalid' for s in steps)}; last step: "
            f"{last.kind}{' ' + last.tool if last.tool else ''}): the last step "
            "allowed only a final answer, but the model's reply broke that schema; "
            "use a model or backend that enforces JSON schemas (llama.cpp, or "
            "response_format on an OpenAI-compatible API)"
        )

    def allowed(self, n: int, steps: list[AgentStep], answer_now: bool = False) -> Allowed:
        """What step ``n`` may be, after ``steps``: only a final answer on the last
        step or after a repeated call; only a tool call while ``tool_choice`` is
        ``required`` and no call has worked yet; else either."""
        if n >= self.max_steps or answer_now:
            return "final"
        return "any" if self._may_answer(steps) else "tool"

    def _may_answer(self, steps: list[AgentStep]) -> bool:
        return self.tool_choice == "auto" or any(
            s.kind == "tool" and s.error is None for s in steps
        )

    def parse(self, text: str, allowed: Allowed = "any") -> dict[str, Any]:
        """The step a reply describes; ``InvalidOutput`` if it is not one, or not one
        that ``allowed`` lets through (a backend without constrained decoding can
        return anything)."""
        try:
            reply = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidOutput(
                f"not JSON ({exc.msg} at char {exc.pos}): {text[:80]!r}", model=self.model
            ) from None
        if isinstance(reply, dict) and set(reply) == {"final"} and isinstance(reply["final"], str):
            if allowed == "tool":
                raise InvalidOutput(
                    "a final answer before any tool call; call a tool first", model=self.model
                )
            return reply
        if (
            isinstance(reply, dict)
            and set(reply) == {"tool", "arguments"}
            and isinstance(reply["arguments"], dict)
        ):
            if allowed == "final":
                raise InvalidOutput(
                    'a tool call where only a final answer is allowed; reply {"final": ...}',
                    model=self.model,
                )
            if reply["tool"] not in self.tools:
                raise InvalidOutput(
                    f"unknown tool {reply['tool']!r} (tools: {', '.join(self.tools)})",
                    model=self.model,
                )
            return reply
        raise InvalidOutput(
            f'{text[:80]!r} is neither {{"tool", "arguments"}} nor {{"final"}}', model=self.model
        )

    async def _call(
        self, n: int, reply: dict[str, Any], ctx: RunContext, model: str, allowed: Allowed
    ) -> AgentStep:
        name, arguments = reply["tool"], reply["arguments"]
        try:
            value = await self.tools[name].run(arguments, ctx, self.tool_timeout)
        except ToolFailed as exc:
            return AgentStep(
                n, "tool", name, arguments, error=str(exc), model=model, allowed=allowed
            )
        return AgentStep(
            n,
            "tool",
            name,
            arguments,
            result_text(value, self.result_chars),
            model=model,
            allowed=allowed,
        )


def _feedback(step: AgentStep) -> str:
    outcome = (
        f"Tool {step.tool} failed: {step.error}"
        if step.error is not None
        else f"Result of {step.tool}: {step.result}"
    )
    if step.repeated:
        return (
            f"You already called {step.tool} with these arguments, and calling it "
            f"again gives the same. {outcome}"
        )
    return outcome


def _nudged(messages: list[ChatMessage]) -> list[ChatMessage]:
    """``messages`` with the last user message asking for the final answer now."""
    last = messages[-1]
    return [*messages[:-1], ChatMessage(role=last.role, content=last.content + FINAL_NUDGE)]


__all__ = ["AgentOperator", "AgentParams", "AgentResult", "AgentStep", "describe_tools"]

"""``PromptOperator``: a sandboxed jinja2 template rendered into a chat request."""

from collections.abc import Mapping
from typing import Any

import pytest

from smmf_flow import DAG, FlowError, MapOperator
from smmf_flow.errors import InputError, NodeFailed, TemplateError, UnknownParameter
from smmf_flow.models.types import ChatRequest
from smmf_flow.operators import PromptOperator


def test_renders_system_and_user_messages_with_generation_params() -> None:
    prompt = PromptOperator(
        "Translate {{ text }} into {{ lang }}.",
        system="You translate into {{ lang }}.",
        name="p",
        max_tokens=12,
        temperature=0.0,
        stop=["\n"],
    )
    request = prompt.render({"text": "cat", "lang": "French"})
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "You translate into French."),
        ("user", "Translate cat into French."),
    ]
    assert (request.max_tokens, request.temperature, request.stop) == (12, 0.0, ["\n"])


def test_a_plain_string_input_is_available_as_input() -> None:
    request = PromptOperator("Q: {{ input }}", name="p").render("why?")
    assert request.messages[-1].content == "Q: why?"


def test_inputs_named_like_dict_methods_render_their_values() -> None:
    prompt = PromptOperator("{{ input.keys }}/{{ input.values }}/{{ input.items }}", name="p")
    request = prompt.render({"keys": "K", "values": "V", "items": "I"})
    assert request.messages[-1].content == "K/V/I"


def test_messages_templates_keep_their_roles_and_order() -> None:
    prompt = PromptOperator(
        "{{ q }}",
        name="p",
        messages=[
            {"role": "user", "content": "Hi, I am {{ who }}."},
            {"role": "assistant", "content": "Hello {{ who }}!"},
        ],
    )
    request = prompt.render({"q": "What is my name?", "who": "Ada"})
    assert [(m.role, m.content) for m in request.messages] == [
        ("user", "Hi, I am Ada."),
        ("assistant", "Hello Ada!"),
        ("user", "What is my name?"),
    ]


def test_json_schema_becomes_the_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request = PromptOperator("{{ q }}", name="p", json_schema=schema).render({"q": "x"})
    assert request.response_format is not None
    assert request.response_format.schema == schema


@pytest.mark.anyio
async def test_a_missing_variable_names_the_variable_and_the_node() -> None:
    with DAG("missing") as dag:
        PromptOperator("Hello {{ name }}, you are {{ age }}.", name="greet")
    with pytest.raises(NodeFailed, match="node 'greet' failed") as err:
        await dag.arun({"name": "Ada"})
    cause = err.value.__cause__
    assert isinstance(cause, InputError)  # the run's input lacks it: the flow is fine
    assert str(err.value) == (
        "node 'greet' failed: InputError: template variable missing: "
        "'age' is undefined (the input has: input, name)"
    )


def test_a_template_that_fails_on_its_input_is_an_input_error_naming_it() -> None:
    prompt = PromptOperator("{{ q }}", system="{{ (q | int) // 0 }}", name="p")
    with pytest.raises(InputError) as caught:
        prompt.render({"q": "3"})
    assert str(caught.value) == (
        "system '{{ (q | int) // 0 }}' failed: ZeroDivisionError: "
        "integer division or modulo by zero"
    )


def test_a_missing_variable_in_the_system_template_is_caught_too() -> None:
    prompt = PromptOperator("{{ q }}", system="Answer in {{ lang }}.", name="p")
    with pytest.raises(InputError, match=r"^template variable missing: 'lang'"):
        prompt.render({"q": "hi"})


@pytest.mark.parametrize(
    ("kwargs", "message", "param"),
    [
        (
            {"template": "Hello {{ name "},
            "template syntax error on line 1: unexpected end",
            "template",
        ),
        ({"template": "ok", "system": "{% if %}"}, "template syntax error on line 1", "system"),
        (
            {"template": "ok", "messages": [{"role": "user", "content": "{{ a"}]},
            "template syntax error on line 1",
            "messages.0.content",
        ),
        (
            {"template": "{% for x in xs %}{{ x }}"},
            "template syntax error on line 1: Unexpected end of template",
            "template",
        ),
    ],
)
def test_a_syntax_error_stops_the_flow_when_the_node_is_made(
    kwargs: dict[str, Any], message: str, param: str
) -> None:
    with pytest.raises(TemplateError, match=f"^node 'p': {message}") as caught:
        PromptOperator(name="p", **kwargs)
    assert (caught.value.node, caught.value.param) == ("p", param)


def test_an_unknown_generation_param_lists_the_valid_ones() -> None:
    with pytest.raises(
        UnknownParameter,
        match=r"^node 'p': unknown parameter 'max_token'; "
        r"did you mean 'max_tokens'\? \(prompt "
        r"parameters: template, system, messages, "
        r"max_tokens, temperature, top_p, stop, seed, "
        r"metadata, response_format, json_schema\)",
    ):
        PromptOperator("{{ q }}", name="p", max_token=5)
    with pytest.raises(
        UnknownParameter, match=r"^unknown parameter 'temprature'; did you mean 'temperature'"
    ):
        PromptOperator("{{ q }}", temprature=0)


def test_a_bad_generation_value_names_the_parameter() -> None:
    with pytest.raises(
        FlowError,
        match=r"^node 'p': parameter 'temperature': input should "
        r"be less than or equal to 2, got 3\.5",
    ) as caught:
        PromptOperator("{{ q }}", name="p", temperature=3.5)
    assert caught.value.param == "temperature"


def test_a_prompt_needs_something_to_render_and_well_formed_messages() -> None:
    with pytest.raises(FlowError, match=r"^node 'p': give a template, a system prompt or messages"):
        PromptOperator(name="p")
    with pytest.raises(
        FlowError,
        match=r"^node 'p': missing required field "
        r"'messages.0.role'",
    ) as caught:
        PromptOperator(name="p", messages=[{"content": "x"}])
    assert caught.value.param == "messages.0.role"
    with pytest.raises(
        UnknownParameter,
        match=r"^node 'p': unknown field 'text' in "
        r"messages.0 \(fields: role, content\)",
    ):
        PromptOperator(name="p", messages=[{"role": "user", "content": "x", "text": "y"}])
    with pytest.raises(
        FlowError,
        match=r"^node 'p': parameter 'messages.0.role': input "
        r"should be 'system', 'user', 'assistant' or 'tool'",
    ):
        PromptOperator(name="p", messages=[{"role": "robot", "content": "x"}])


def test_the_sandbox_refuses_unsafe_attribute_access() -> None:
    prompt = PromptOperator("{{ q.__class__.__mro__ }}", name="p")
    with pytest.raises(
        InputError, match=r"^the template refused to render: access to attribute '__class__'"
    ):
        prompt.render({"q": "x"})


def test_the_output_is_typed_for_the_edge_check() -> None:
    with DAG("typed") as dag:
        prompt = PromptOperator("{{ input }}", name="p")
        MapOperator(str, name="upstream", output_type=str) >> prompt
    assert dag.node("p").output_type is ChatRequest
    assert prompt.params() == {"template": "{{ input }}"}
    assert prompt.input_types == (Mapping[str, Any] | str,)


def test_params_give_back_what_was_set() -> None:
    prompt = PromptOperator(
        "{{ q }}",
        system="Be brief.",
        name="p",
        max_tokens=8,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert prompt.params() == {
        "template": "{{ q }}",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8,
    }

"""Sandboxed expressions and function references."""

from __future__ import annotations

import inspect

import pytest

from smmf_flow.dag.ports import signature_of
from smmf_flow.errors import BackendTimeout, FlowError, InputError
from smmf_flow.flowfile.functions import Expression, from_spec, to_spec


def no_functions(ref: str):  # type: ignore[no-untyped-def]
    raise FlowError(f"no functions here ({ref})")


def test_an_expression_sees_its_inputs_by_name() -> None:
    assert Expression("input | upper")("abc") == "ABC"
    assert Expression("acc + chunk", names=("acc", "chunk"))(1, 2) == 3
    joined = Expression("inputs | join('+') ~ '/' ~ input", variadic="inputs")
    assert joined("a", "b") == "a+b/a"


def test_an_expression_returns_native_values() -> None:
    assert Expression("[input, input * 2]")(2) == [2, 4]
    assert Expression("{'n': input}")(1) == {"n": 1}


def test_vector_helpers() -> None:
    assert Expression("cosine(input, input)")([1.0, 2.0]) == pytest.approx(1.0)
    assert Expression("cosine(input, [0, 0])")([1.0, 2.0]) == 0.0
    assert Expression("dot(input, input)")([3, 4]) == 25.0


def test_the_signature_gives_the_ports() -> None:
    assert (
        signature_of(Expression("input")).inputs and not signature_of(Expression("input")).variadic
    )
    assert signature_of(Expression("inputs", variadic="inputs")).variadic
    assert list(inspect.signature(Expression("acc", names=("acc", "chunk"))).parameters) == [
        "acc",
        "chunk",
    ]


def test_the_sandbox_refuses_internals() -> None:
    with pytest.raises(
        InputError,
        match=r"expression 'input.__class__.__mro__': access to "
        r"attribute '__class__' of 'str' object is unsafe",
    ):
        Expression("input.__class__.__mro__")("x")


def test_an_undefined_name_is_refused_when_compiled_listing_the_variables() -> None:
    with pytest.raises(
        FlowError,
        match=r"expression 'nope': 'nope' is not defined; the "
        r"variables are input",
    ):
        Expression("nope")
    with pytest.raises(FlowError, match=r"'acc' is not defined; the variables are input, inputs"):
        Expression("acc + 1", variadic="inputs")
    assert Expression("range(2) | list | length + max(input, 1)")(0) == 3  # helpers are names


def test_a_missing_key_of_the_input_is_an_input_error_when_run() -> None:
    with pytest.raises(
        InputError,
        match=r"expression 'input.text': 'dict object' has no "
        r"attribute 'text'; the variables are input",
    ):
        Expression("input.text")({"txt": "a"})


def test_dot_access_reads_a_mappings_item_before_its_method() -> None:
    named = {"keys": "K", "values": "V", "items": "I", "get": "G"}
    assert Expression("[input.keys, input.values, input.items, input.get]")(named) == [
        "K",
        "V",
        "I",
        "G",
    ]
    assert Expression("input.items() | list")({"a": 1}) == [("a", 1)]  # no such key: the method


def test_dot_access_on_a_mapping_opens_nothing_new() -> None:
    assert Expression("input.__class__")({"__class__": "an item"}) == "an item"
    for source in ("input.__class__", "input.update", "input.pop"):
        with pytest.raises(InputError, match="is unsafe"):
            Expression(source)({"a": 1})


@pytest.mark.parametrize(
    ("source", "value", "error"),
    [
        ("(input | int) // 0", "3", "ZeroDivisionError: integer division or modulo by zero"),
        ("int(input)", "three", "ValueError: invalid literal for int() with base 10: 'three'"),
        ("input + 1", "a", 'TypeError: can only concatenate str (not "int") to str'),
    ],
)
def test_an_expression_that_fails_on_its_input_is_an_input_error_naming_both(
    source: str, value: str, error: str
) -> None:
    with pytest.raises(InputError) as caught:
        Expression(source)(value)
    assert str(caught.value) == f"expression {source!r} failed: {error}"


def test_an_smmf_error_inside_an_expression_stays_itself() -> None:
    class Remote:
        def ask(self) -> str:
            raise BackendTimeout("the model did not answer")

    with pytest.raises(BackendTimeout, match="the model did not answer"):
        Expression("input.ask()")(Remote())


def test_a_syntax_error_is_found_when_compiled() -> None:
    with pytest.raises(FlowError, match=r"bad expression 'input \+': "):
        Expression("input +")


def test_specs() -> None:
    assert from_spec("input", no_functions)(3) == 3
    assert from_spec({"expr": "input"}, no_functions)(3) == 3
    with pytest.raises(FlowError, match=r"no functions here \(m:f\)"):
        from_spec({"function": "m:f"}, no_functions)
    with pytest.raises(FlowError, match="give a function as"):
        from_spec({"lambda": "x"}, no_functions)


def module_function(x: int) -> int:
    return x


def test_to_spec_names_expressions_and_module_functions() -> None:
    assert to_spec(Expression("input"), "n") == {"expr": "input"}
    assert to_spec(module_function, "n") == {"function": f"{__name__}:module_function"}
    with pytest.raises(
        FlowError,
        match=r"^node 'n': its function .*<lambda>.* cannot be "
        r"written",
    ) as caught:
        to_spec(lambda x: x, "n")
    assert caught.value.node == "n"

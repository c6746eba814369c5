"""The exception tree's place fields: ``str(error)`` is composed from them,
``located()`` fills only what an error lacks, and they survive pickling (errors
cross process boundaries) with the error's class."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from smmf_flow.errors import (
    FlowError,
    FlowFileError,
    InputError,
    ModelNotFound,
    RunError,
    SmmfError,
    TemplateError,
    UnknownParameter,
    describe,
    did_you_mean,
    located,
)


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({}, "bad"),
        ({"node": "a"}, "node 'a': bad"),
        ({"file": "f.yaml"}, "f.yaml: bad"),
        ({"file": "f.yaml", "line": 3}, "f.yaml:3: bad"),
        (
            {"file": "f.yaml", "line": 3, "column": 7, "node": "a", "param": "k"},
            "f.yaml:3:7: node 'a': bad",
        ),
        ({"param": "k"}, "bad"),  # the message names the parameter; the field points at it
    ],
)
def test_the_text_is_composed_from_the_fields(fields: dict[str, object], text: str) -> None:
    error = FlowError("bad", **fields)  # type: ignore[arg-type]
    assert str(error) == text and error.message == "bad"
    for name in ("file", "line", "column", "node", "param"):
        assert getattr(error, name) == fields.get(name)


def test_located_fills_only_what_the_error_lacks() -> None:
    def compile_inside() -> None:
        with located(node="outer", param="system", file="f.yaml"), located(node="inner"):
            raise TemplateError("does not compile", param="template")

    with pytest.raises(TemplateError) as caught:
        compile_inside()
    error = caught.value
    assert (error.node, error.param, error.file, error.line) == (
        "inner",
        "template",
        "f.yaml",
        None,
    )
    assert str(error) == "f.yaml: node 'inner': does not compile"


def test_located_leaves_other_errors_alone() -> None:
    with pytest.raises(RunError) as caught, located(node="n"):
        raise RunError("not a flow error")
    assert str(caught.value) == "not a flow error" and not hasattr(caught.value, "node")


def test_a_located_error_pickles_with_its_class_and_fields() -> None:
    error = ModelNotFound("smolm2", ["smollm2", "minilm"], node="answer", param="models.1")
    error.locate(file="flows/x.yaml", line=9, column=13)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ModelNotFound
    assert (again.name, again.suggestions, again.node, again.param, again.line) == (
        "smolm2",
        ["smollm2", "minilm"],
        "answer",
        "models.1",
        9,
    )
    assert (
        str(again)
        == str(error)
        == (
            "flows/x.yaml:9:13: node 'answer': unknown model 'smolm2'; did you mean 'smollm2', "
            "'minilm'? (known models: minilm, smollm2)"
        )
    )


def test_an_input_errors_place_is_composed_into_its_text_and_pickles() -> None:
    error = InputError("expression 'x' failed: ZeroDivisionError: division by zero")
    assert str(error) == error.message
    error.locate(flow="f", node="a").locate(node="b", file="f.yaml", line=3, column=3)
    assert (error.flow, error.node, error.line) == ("f", "a", 3)
    text = (
        "f.yaml:3:3: flow 'f', node 'a': expression 'x' failed: ZeroDivisionError: division by zero"
    )
    assert str(error) == text
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is InputError and str(again) == text
    with pytest.raises(TypeError, match="no place field 'param'"):
        error.locate(param="k")


def test_the_tree() -> None:
    for cls in (FlowFileError, ModelNotFound, TemplateError, UnknownParameter):
        assert issubclass(cls, FlowError) and issubclass(cls, SmmfError)
    with pytest.raises(TypeError, match="no place field 'lines'"):
        FlowError("x").locate(lines=3)


def test_did_you_mean() -> None:
    assert did_you_mean("max_token", ["max_tokens", "model"]) == "; did you mean 'max_tokens'?"
    assert did_you_mean("zzz", ["max_tokens"]) == ""


def test_describe_gives_a_syntax_errors_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for path, shown in ((tmp_path / "my_ops.py", "my_ops.py"), ("/srv/x.py", "/srv/x.py")):
        with pytest.raises(SyntaxError) as caught:
            compile("x = 1\ndef f(:\n", str(path), "exec")
        assert describe(caught.value).startswith(f"SyntaxError at {shown}:2: ")
    assert describe(ValueError("bad")) == "ValueError: bad"
    assert describe(RunError("smmf's own")) == "smmf's own"

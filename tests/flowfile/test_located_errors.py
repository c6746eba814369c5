"""Where a flow file's error points is data: the error's fields (file, line,
column, node, param), filled from the node and parameter it names, never found
in its text. So a misspelt operator argument names its own key, and rewording
any message cannot move its ``file:line``."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import smmf_flow.operators.params as params_module
from smmf_flow.errors import FlowError, ModelNotFound, TemplateError, UnknownParameter
from smmf_flow.flowfile.flow import load_flow

MISSPELT = """\
version: 1
inputs:
  question: str
nodes:
  prompt:
    type: prompt
    template: "{{ question }}"
  answer:
    max_token: 64
    type: llm
    model: smollm2
edges: [prompt >> answer]
"""


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_misspelt_operator_argument_names_its_key_the_node_and_the_valid_ones(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, MISSPELT)
    with pytest.raises(UnknownParameter) as caught:
        load_flow(path)
    error = caught.value
    assert (error.file, error.line, error.column) == (str(path), 9, 5)
    assert (error.node, error.param) == ("answer", "max_token")
    assert str(error) == (
        f"{path}:9:5: node 'answer': unknown parameter 'max_token'; did you mean "
        "'max_tokens'? (llm parameters: model, stream, system, max_tokens, temperature, "
        "top_p, stop, seed, metadata, response_format, json_schema)"
    )


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (
            "nodes:\n  f:\n    type: fallback\n    models: [a, b]\n    model_retry: {attemps: 2}\n",
            ("f", "model_retry.attemps", 5, 19),
        ),
        (
            "nodes:\n  r:\n    type: router\n    routes:\n      - model: a\n        when: "
            "{regex: '('}\n",
            ("r", "routes.0.when.regex", 6, 23),
        ),
        ("nodes:\n  r:\n    type: retriever\n    k: -1\n    store: .smmf/rag\n", ("r", "k", 4, 8)),
        (
            "nodes:\n  p:\n    type: prompt\n    messages:\n      - {role: user, content: hi}\n"
            "      - {role: bot, content: hi}\n",
            ("p", "messages.1.role", 6, 16),
        ),
    ],
)
def test_a_bad_value_deep_inside_a_node_points_at_itself(
    tmp_path: Path, text: str, fields: tuple[Any, ...]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    error = caught.value
    assert (error.node, error.param, error.line, error.column) == fields, str(error)
    assert error.file == str(path) and str(error).startswith(f"{path}:{fields[2]}:{fields[3]}:")


def test_an_operators_own_error_keeps_its_class_and_gets_the_place(tmp_path: Path) -> None:
    path = write(
        tmp_path, "nodes:\n  p:\n    type: prompt\n    system: ok\n    template: '{{ broken'\n"
    )
    with pytest.raises(TemplateError) as caught:
        load_flow(path)
    assert (caught.value.node, caught.value.param, caught.value.line) == ("p", "template", 5)


def test_a_model_name_the_registry_lacks_points_at_that_name(tmp_path: Path) -> None:
    from smmf_flow.models.registry import ModelRegistry

    path = write(
        tmp_path, "nodes:\n  f:\n    type: fallback\n    models:\n      - smollm2\n      - smolm2\n"
    )
    flow = load_flow(path)
    with pytest.raises(ModelNotFound) as caught:
        flow.check(ModelRegistry.default())
    error = caught.value
    assert (error.node, error.param, error.line, error.column) == ("f", "models.1", 6, 9)
    assert error.name == "smolm2" and error.suggestions[0] == "smollm2"


REWORDINGS = [
    "level is odd",
    "'name', 'other' and 'level' are all wrong",  # quotes other parameters first
    "node 'elsewhere': see `other` and 'name'",  # looks like another node's prefix
    "no quotes, no names, nothing to scrape",
]


@pytest.mark.parametrize("message", REWORDINGS)
def test_rewording_an_operators_message_cannot_move_its_place(
    tmp_path: Path, plugin_dir: Any, monkeypatch: pytest.MonkeyPatch, message: str
) -> None:
    folder = plugin_dir(
        "smmf_reword_ops",
        """
        import os
        from smmf_flow import FlowError, Operator

        class Picky(Operator):
            kind = "picky"

            def __init__(self, name: str = "", other: int = 0, level: int = 0, **options):
                raise FlowError(os.environ["SMMF_TEST_MESSAGE"], param="level")
    """,
    )
    monkeypatch.setenv("SMMF_TEST_MESSAGE", message)
    path = write(
        folder,
        """\
        plugins: [smmf_reword_ops]
        nodes:
          a:
            type: picky
            other: 1
            level: 3
    """,
        name="reworded.yaml",
    )
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    error = caught.value
    assert (error.line, error.column, error.node, error.param) == (6, 12, "a", "level")
    assert str(error) == f"{path}:6:12: node 'a': {message}"


@pytest.mark.parametrize("wording", ["{got}", "'model' and 'stream' say: {got}", "x"])
def test_rewording_pydantics_messages_cannot_move_their_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wording: str
) -> None:
    original = params_module.problem
    monkeypatch.setattr(params_module, "problem", lambda err: wording.format(got=original(err)))
    path = write(
        tmp_path,
        "nodes:\n  a:\n    type: llm\n    model: m\n    stream: false\n    temperature: 9\n",
    )
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    assert (caught.value.line, caught.value.column, caught.value.param) == (6, 18, "temperature")

"""A flow file is configuration, not code: the hostile ones, reproduced.

Each attack below worked (or ate the machine) before the allow-list and the
limits: ``function:`` walked any attribute chain of a plugin module, dunders
included (``__builtins__``, ``__loader__.get_data``, ``os.system``); an agent
took any callable as a tool; expressions and prompt templates could build
strings of gigabytes or numbers of billions of digits, and reach a function's
``__globals__`` through ``str.format``; YAML aliases expanded without bound.
Now each is refused with a located ``FlowError`` (or, while running, an
``InputError``) that says what is allowed.
"""

from __future__ import annotations

import itertools
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smmf_flow.errors import FlowError, FlowFileError, InputError, NodeFailed
from smmf_flow.flowfile.flow import Flow, load_flow
from smmf_flow.flowfile.loader import MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES
from smmf_flow.sandbox import FlowSandbox

from .fuzzing import no_hang

PLUGIN = """
    import os
    from functools import partial
    from json import loads
    from os import system

    from smmf_flow import map_operator
    from smmf_flow.operators import tool
    from smmf_flow.operators.builtin_tools import calculator

    CONFIG = {"key": "value"}
    CALLS = []


    def _private(text):
        return text


    def exclaim(text):
        CALLS.append(text)
        return text + "!"


    def is_long(text):
        return len(text) > 3


    class Length:
        def __init__(self, text):
            self.n = len(text)

        def method(self, text):
            return text


    @map_operator
    def shout(text: str) -> str:
        return text.upper()


    @tool
    def add(a: int, b: int) -> int:
        \"\"\"Add two whole numbers.\"\"\"
        return a + b


    half = partial(int, base=10)
"""


@pytest.fixture
def flow_file(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``flow_file(yaml)``: the flow written beside the plugin module ``plugin.py``
    (which it lists), in a fresh folder; the module is forgotten afterwards."""
    (tmp_path / "plugin.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")

    def write(text: str) -> Path:
        path = tmp_path / "flow.yaml"
        path.write_text("plugins: [plugin]\n" + textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    yield write
    sys.modules.pop("plugin", None)


def run(flow: Flow, value: object) -> object:
    return flow.dag.run(flow.prepare(value), output=flow.output)


def map_flow(flow_file: Callable[[str], Path], ref: str) -> Path:
    return flow_file(f"""
        nodes:
          step:
            type: map
            function: "{ref}"
    """)


# --- function: names only what a plugin defines publicly ---------------------------

CHAIN = "is an attribute chain; a flow file may name only one public module-level name"


REFUSED_FUNCTIONS = [
    ("plugin:__builtins__.eval", f"'__builtins__.eval' {CHAIN}"),
    ("plugin:__builtins__.get", f"'__builtins__.get' {CHAIN}"),
    ("plugin:__loader__.get_data", f"'__loader__.get_data' {CHAIN}"),
    ("plugin:__spec__.loader.get_data", f"'__spec__.loader.get_data' {CHAIN}"),
    ("plugin:os.system", f"'os.system' {CHAIN}"),
    ("plugin:Length.method", f"'Length.method' {CHAIN}"),
    ("plugin:_private", "'_private' is private"),
    ("plugin:__builtins__", "'__builtins__' is private"),
    ("plugin:system", r"names \w+\.system, which plugin 'plugin' imports rather than defines"),
    ("plugin:loads", r"names json\.loads, which plugin 'plugin' imports rather than defines"),
    ("plugin:os", "names the module os"),
    ("plugin:half", "names a partial"),
    ("plugin:CONFIG", "names a dict"),
]


@pytest.mark.parametrize(
    ("ref", "refusal"), REFUSED_FUNCTIONS, ids=[ref.split(":")[1] for ref, _ in REFUSED_FUNCTIONS]
)
def test_a_function_reference_reaches_only_the_allow_list(
    flow_file,
    ref: str,  # type: ignore[no-untyped-def]
    refusal: str,
) -> None:
    path = map_flow(flow_file, ref)
    with pytest.raises(
        FlowError,
        match=rf"^{re.escape(str(path))}:5:15: node 'step': "
        rf"function '{re.escape(ref)}'.*{refusal}",
    ) as caught:
        load_flow(path)
    assert (caught.value.node, caught.value.param, caught.value.line) == ("step", "function", 5)
    assert (
        "a function or class the plugin defines itself, an @map_operator function, "
        "or a @tool" in str(caught.value)
    )


def test_a_flow_cannot_read_a_file_through_a_plugins_loader(flow_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret.txt"
    secret.write_text("the api key", encoding="utf-8")
    with pytest.raises(FlowError, match=r"'__loader__\.get_data' is an attribute chain"):
        run(load_flow(map_flow(flow_file, "plugin:__loader__.get_data")), str(secret))


def test_a_flow_cannot_run_a_shell_command_through_an_imported_module(
    flow_file,  # type: ignore[no-untyped-def]
    tmp_path,
) -> None:
    marker = tmp_path / "ran"
    for ref in ("plugin:os.system", "plugin:system"):
        with pytest.raises(FlowError, match=f"function '{ref}'"):
            run(load_flow(map_flow(flow_file, ref)), f"touch {marker}")
    assert not marker.exists()


def test_what_a_plugin_defines_publicly_still_runs(flow_file) -> None:  # type: ignore[no-untyped-def]
    flow = load_flow(
        flow_file("""
        nodes:
          loud: {type: map, function: "plugin:shout"}
          bang: {type: map, function: "plugin:exclaim"}
          quiet: {type: map, expr: input | lower}
          route:
            type: branch
            branches: [{when: {function: "plugin:is_long"}, to: bang}]
            default: quiet
        edges: ["loud >> route"]
        output: bang
    """)
    )
    assert run(flow, "hello") == "HELLO!"
    import plugin  # type: ignore[import-not-found]

    assert plugin.CALLS == ["HELLO"]
    size = load_flow(flow_file("nodes:\n  size: {type: map, function: 'plugin:Length'}\n"))
    assert run(size, "abc").n == 3  # type: ignore[attr-defined]
    calc = load_flow(flow_file("nodes:\n  calc: {type: map, function: 'plugin:calculator'}\n"))
    assert run(calc, "6 * 7") == "42"  # a @tool the plugin re-exports


# --- an agent's tools are Tool objects -----------------------------------------------


def agent_flow(flow_file: Callable[[str], Path], *refs: str) -> Path:
    listed = ", ".join(f'"{r}"' for r in refs)
    return flow_file(f"""
        nodes:
          solve: {{type: agent, model: smollm2, tools: [{listed}]}}
    """)


@pytest.mark.parametrize(
    ("ref", "refusal"),
    [
        (
            "plugin:exclaim",
            "tool 'plugin:exclaim' names plugin.exclaim, not a tool; decorate a "
            r"function of the plugin with @tool",
        ),
        (
            "plugin:loads",
            r"tool 'plugin:loads' names json\.loads, which plugin 'plugin' imports "
            "rather than defines, not a tool",
        ),
        ("plugin:__builtins__.get", f"tool 'plugin:__builtins__.get': '__builtins__.get' {CHAIN}"),
        ("plugin:Length", "tool 'plugin:Length' names plugin.Length, not a tool"),
    ],
)
def test_an_agent_tool_must_be_a_tool(flow_file, ref: str, refusal: str) -> None:  # type: ignore[no-untyped-def]
    path = agent_flow(flow_file, "plugin:add", ref)
    with pytest.raises(
        FlowError,
        match=rf"^{re.escape(str(path))}:3:\d+: node 'solve': "
        rf"{refusal}",
    ) as caught:
        load_flow(path)
    assert caught.value.param == "tools.1"


def test_tools_defined_or_re_exported_by_a_plugin_are_taken(flow_file) -> None:  # type: ignore[no-untyped-def]
    flow = load_flow(agent_flow(flow_file, "plugin:add", "plugin:calculator"))
    assert list(flow.dag.node("solve").tools) == ["add", "calculator"]


# --- retry.on names exception classes only ------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "__class__",
        "describe",
        "annotations",
        "os.error",
        "KeyboardInterrupt",
        "SystemExit",
        "print",
        "_Feature",
    ],
)
def test_retry_on_names_only_error_classes(flow_file, name: str) -> None:  # type: ignore[no-untyped-def]
    path = flow_file(f"""
        nodes:
          a: {{type: map, expr: input, retry: {{on: ["{name}"]}}}}
    """)
    with pytest.raises(
        FlowError,
        match=rf"^{re.escape(str(path))}:3:\d+: node 'a': "
        rf"retry.on: '{name}' is not an error class",
    ) as caught:
        load_flow(path)
    assert caught.value.param == "retry.on.0"


def test_retry_on_takes_the_error_tree_and_built_in_exceptions(flow_file) -> None:  # type: ignore[no-untyped-def]
    flow = load_flow(
        flow_file("""
        nodes:
          a: {type: map, expr: input, retry: {on: [BackendTimeout, OSError]}}
    """)
    )
    assert [c.__name__ for c in flow.dag.node("a").retry.on] == ["BackendTimeout", "OSError"]


# --- expressions and templates: no way out, and no runaway ---------------------------

LIMIT = r"the limit is [\d,]+ \(flow expressions and templates are bounded"


@pytest.mark.parametrize(
    ("expr", "refusal"),
    [
        ('"x" * 10**9', rf"'\*' would need 1,000,000,000 characters or items; {LIMIT}"),
        ("[0] * 10**9", rf"'\*' would need 1,000,000,000 characters or items; {LIMIT}"),
        ("[[0] * 1000] * 10**6", rf"'\*' would need 1,000,000,000 characters or items; {LIMIT}"),
        ("9 ** (9 ** 9)", rf"'\*\*' would need 1,228,093,895 bits; {LIMIT}"),
        ("(10 ** 4000) * (10 ** 4000)", rf"'\*' would need 26,576 bits; {LIMIT}"),
        ('"%0999999999d" % 1', r"'%' formatting would need 1,000,000,011 characters"),
        ('"{:>999999999}".format(1)', r"str.format would need 1,000,000,012 characters"),
        ('"x".ljust(10**9)', r"str.ljust\(\) would need 1,000,000,000 characters"),
        ('"x" | center(10**9)', r"the 'center' filter would need 1,000,000,000 characters"),
        ('"ab" | wordwrap(1, wrapstring="x" * 1000000)', "the 'wordwrap' filter would need"),
        (
            "json(input, indent=10**9)",
            r"json\(\) would need 1,000,000,000 spaces of indent; "
            "the limit is 16",
        ),
        ("round(5, -10**9)", r"round\(\) would need 1,000,000,000 digits; the limit is 1,000"),
        ("range(10**9) | list", r"range would need 1,000,000,000 items; the limit is 100,000"),
        (
            'str.format("{0.__globals__}", cosine)',
            "access to attribute 'format' of 'type' object is unsafe",
        ),
        ("input.append(1) or input", "access to attribute 'append' of 'list' object is unsafe"),
    ],
)
def test_an_expression_cannot_escape_or_run_away(
    flow_file,
    expr: str,  # type: ignore[no-untyped-def]
    refusal: str,
) -> None:
    flow = load_flow(
        flow_file(f"""
        nodes:
          a: {{type: map, expr: '{expr.replace("'", "''")}'}}
    """)
    )
    with no_hang(10), pytest.raises(NodeFailed) as caught:
        run(flow, [1, 2])
    cause = caught.value.__cause__
    assert isinstance(cause, InputError), cause
    assert cause.message.startswith("expression "), cause  # the place goes in front
    assert re.search(refusal, cause.message), cause


def test_a_name_no_expression_may_use_is_refused_before_anything_runs(flow_file) -> None:  # type: ignore[no-untyped-def]
    path = flow_file("nodes:\n  a: {type: map, expr: 'lipsum(10**9)'}\n")
    with pytest.raises(
        FlowError,
        match=r"node 'a': expression 'lipsum\(10\*\*9\)': 'lipsum' "
        r"is not defined; the variables are input",
    ):
        load_flow(path)


def test_jinja_powers_group_from_the_left_so_a_tower_is_small(flow_file) -> None:  # type: ignore[no-untyped-def]
    flow = load_flow(flow_file("nodes:\n  a: {type: map, expr: '9 ** 9 ** 9'}\n"))
    assert run(flow, None) == (9**9) ** 9


def test_a_prompt_template_has_the_same_guard(flow_file) -> None:  # type: ignore[no-untyped-def]
    flow = load_flow(
        flow_file("""
        nodes:
          ask: {type: prompt, template: "{{ input * 1000000000 }}"}
    """)
    )
    with no_hang(10), pytest.raises(NodeFailed) as caught:
        run(flow, "x")
    assert isinstance(caught.value.__cause__, InputError)
    assert "'*' would need 1,000,000,000 characters or items" in str(caught.value.__cause__)


def test_prompt_and_answer_templates_share_the_one_sandbox() -> None:
    from smmf_flow.flowfile import functions
    from smmf_flow.operators import answer, prompt

    for module in (functions, prompt, answer):
        assert type(module._ENV) is FlowSandbox, module.__name__


# --- YAML that expands, nests or grows without bound --------------------------------

LAUGHS = (
    "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(
        f"{child}: &{child} [{', '.join([f'*{parent}'] * 9)}]\n"
        for parent, child in itertools.pairwise("abcdefghi")
    )
    + "nodes:\n  x: {type: map, expr: input}\n"
)


def test_a_billion_laughs_is_refused_at_its_line_without_expanding(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS, encoding="utf-8")
    with (
        no_hang(10),
        pytest.raises(
            FlowFileError,
            match=(
                rf"^{re.escape(str(path))}:6:4: the flow file holds more than {MAX_VALUES:,} "
                r"values here "
                r"\(counting each value a YAML alias or merge key repeats\)"
            ),
        ),
    ):
        load_flow(path)


def test_merge_keys_are_counted_like_aliases(tmp_path: Path) -> None:
    lines = ["a: &a {k0: 1, k1: 1, k2: 1, k3: 1, k4: 1, k5: 1, k6: 1, k7: 1, k8: 1}"]
    for parent, child in itertools.pairwise("abcdefghi"):
        lines.append(f"{child}: &{child} {{<<: [{', '.join([f'*{parent}'] * 9)}]}}")
    path = tmp_path / "merges.yaml"
    path.write_text("\n".join(lines) + "\nnodes: *i\n", encoding="utf-8")
    with no_hang(10), pytest.raises(FlowFileError, match=f"more than {MAX_VALUES:,} values"):
        load_flow(path)


def test_too_many_alias_uses_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "aliases.yaml"
    path.write_text(
        "x: &x 1\ny: [" + ", ".join(["*x"] * (MAX_ALIASES + 1)) + "]\n", encoding="utf-8"
    )
    with pytest.raises(
        FlowFileError,
        match=rf"^{re.escape(str(path))}:2:\d+: more than {MAX_ALIASES} "
        r"alias uses \(\*name\)",
    ):
        load_flow(path)


def test_an_alias_inside_itself_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("nodes:\n  a: &a {type: map, expr: input, again: *a}\n", encoding="utf-8")
    with pytest.raises(
        FlowFileError,
        match=rf"^{re.escape(str(path))}:2:41: this alias refers to a value "
        "that contains it",
    ):
        load_flow(path)


@pytest.mark.parametrize(
    "text",
    [
        "nodes:\n  a: {type: map, expr: input, deep: " + "[" * 500 + "]" * 500 + "}\n",
        "x: &x "
        + "[" * 40
        + "]" * 40
        + "\ny: &y [[[[[[[[[[[[[[[[[[[[[[[[[[[[[*x]]]]]]]]]]]]]]]]]]]]]]"
        "]]]]]]]\nnodes:\n  a: {type: map, expr: input}\n",
    ],
    ids=["brackets", "aliases"],
)
def test_deep_nesting_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(
        FlowFileError,
        match=rf"^{re.escape(str(path))}:\d+:\d+: nested more than {MAX_DEPTH} "
        "levels deep",
    ):
        load_flow(path)


def test_a_flow_file_is_read_up_to_its_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(
        "nodes:\n  a: {type: map, expr: input}\n" + "#" * MAX_FILE_BYTES, encoding="utf-8"
    )
    with pytest.raises(
        FlowFileError,
        match=rf"^{re.escape(str(path))}: the flow file is larger than "
        rf"{MAX_FILE_BYTES:,} bytes",
    ):
        load_flow(path)
    with no_hang(10), pytest.raises(FlowFileError, match="larger than 1,048,576 bytes"):
        load_flow("/dev/zero")


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        (
            "nodes:\n  a: {type: map, expr: input, timeout: " + "9" * 5000 + "}\n",
            r"2:40: cannot read the value '9{36}\.\.\. as int: Exceeds the limit \(4300 digits\) "
            "for integer string conversion: value has 5000 digits$",
        ),
        (
            "nodes:\n  a: {type: map, expr: input, timeout: !!float abc}\n",
            r"2:40: cannot read the value 'abc' as float: could not convert string to float",
        ),
        (
            "nodes:\n  a: {type: map, expr: input, timeout: !!timestamp abc}\n",
            r"2:40: cannot read the value 'abc' as timestamp: not a valid timestamp",
        ),
        (
            'nodes:\n  a: {type: map, expr: "in\x00put"}\n',
            r"2:27: invalid YAML: unacceptable character #x0000: special characters are not "
            "allowed",
        ),
    ],
    ids=["digits", "float-tag", "timestamp-tag", "nul"],
)
def test_a_value_yaml_cannot_read_is_a_located_error(
    tmp_path: Path, text: str, refusal: str
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FlowFileError, match=rf"^{re.escape(str(path))}:{refusal}"):
        load_flow(path)

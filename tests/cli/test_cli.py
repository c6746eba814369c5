"""The ``smmf-flow`` command on flows of primitive operators (no model loads):
output, exit codes, one-line errors, and each subcommand."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import ROOT, smmf

WORDS = """
    name: words
    inputs:
      text: str
      n: {type: int, default: 2}
    nodes:
      split: {type: map, expr: "input.text.split()"}
      head: {type: map, expr: "input[:2] | join(' ')"}
    edges: ["split >> head"]
"""

STREAM = """
    name: letters
    stream: true
    nodes:
      letters: {type: streamify, expr: "input | list"}
      loud: {type: transform_stream, expr: "chunk | upper"}
    edges: ["letters >> loud"]
"""


@pytest.fixture
def words(write: Callable[[str, str], Path]) -> Path:
    return write("words.yaml", WORDS)


def test_run_prints_the_output(words: Path) -> None:
    done = smmf("run", str(words), "--input", "text=one two three")
    assert (done.returncode, done.stdout, done.stderr) == (0, "one two\n", "")


def test_run_json_and_trace(words: Path) -> None:
    done = smmf("run", str(words), "-i", "text=a b c", "--json", "--trace")
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"flow": "words", "output": "a b"}
    trace = json.loads(done.stderr)["trace"]
    assert [(r["node"], r["state"]) for r in trace] == [
        ("split", "succeeded"),
        ("head", "succeeded"),
    ]


def test_trace_table_goes_to_stderr(words: Path) -> None:
    done = smmf("run", str(words), "--input-json", '{"text": "x y"}', "--trace")
    assert done.stdout == "x y\n"
    lines = done.stderr.splitlines()
    assert lines[0].split()[:5] == ["node", "type", "state", "ms", "tries"]
    assert lines[2].split()[:3] == ["split", "map", "succeeded"]


def test_input_file_yaml(words: Path, write: Callable[[str, str], Path]) -> None:
    values = write("in.yaml", "text: from a file\n")
    assert smmf("run", str(words), "--input-file", str(values)).stdout == "from a\n"


def test_an_input_overrides_the_same_name_from_json(words: Path) -> None:
    done = smmf("run", str(words), "--input-json", '{"text": "a b c"}', "-i", "text=x y z")
    assert (done.returncode, done.stdout) == (0, "x y\n"), done.stderr


def test_inputs_named_like_dict_methods_print_their_values(
    write: Callable[[str, str], Path],
) -> None:
    flow = write(
        "methods.yaml",
        """
        inputs: {keys: str, values: str, items: str}
        nodes:
          a: {type: map, expr: "input.keys ~ '/' ~ input.values ~ '/' ~ input.items"}
    """,
    )
    done = smmf("run", str(flow), "-i", "keys=K", "-i", "values=V", "-i", "items=I")
    assert (done.returncode, done.stdout, done.stderr) == (0, "K/V/I\n", "")


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("input", "error: {path}: --input-file is not UTF-8 text (byte 1)\n"),
        ("flow", "error: {path}:1:2: not UTF-8 text (invalid start byte at byte 1)\n"),
        ("models", "error: {path}:1: not UTF-8 text (invalid start byte at byte 1)\n"),
    ],
)
def test_a_file_that_is_not_utf8_exits_2_naming_it(
    words: Path, tmp_path: Path, where: str, message: str
) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"q\xff\xfe\x00binary")
    args = {
        "input": ["run", str(words), "--input-file", str(binary)],
        "flow": ["run", str(binary)],
        "models": ["models", "list", "--models", str(binary)],
    }[where]
    done = smmf(*args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == message.format(path=binary)


def test_stream_prints_chunks(write: Callable[[str, str], Path]) -> None:
    flow = write("letters.yaml", STREAM)
    done = smmf("run", str(flow), "--input-json", '"abc"')
    assert (done.returncode, done.stdout) == (0, "ABC\n")
    lines = smmf("run", str(flow), "--input-json", '"ab"', "--json").stdout.splitlines()
    assert [json.loads(line) for line in lines] == [{"chunk": "A"}, {"chunk": "B"}]
    gathered = smmf("run", str(flow), "--input-json", '"ab"', "--no-stream", "--json")
    assert json.loads(gathered.stdout) == {"flow": "letters", "output": "AB"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "n=3"], "error: missing input 'text' (str); pass --input text=...\n"),
        (["-i", "text=x", "-i", "n=many"], "error: input 'n' must be int, got 'many'"),
        (
            ["-i", "text=x", "-i", "typo=1"],
            "error: unknown input 'typo' (the flow's inputs: text, n)\n",
        ),
        (["-i", "novalue"], "--input takes KEY=VALUE, got 'novalue'"),
        (
            ["-i", "text=a", "--input", "text=b"],
            "error: --input text given twice (see 'smmf-flow run --help')\n",
        ),
        (["--input-json", "{", "-i", "text=x"], "--input-json is not valid JSON"),
        (
            ["--input-json", "{}", "--input-file", "README.md"],
            "give --input-json or --input-file, not both",
        ),
        (
            ["--no-such-option"],
            "error: No such option '--no-such-option'. (see 'smmf-flow run --help')\n",
        ),
    ],
)
def test_usage_errors_exit_2(words: Path, args: list[str], message: str) -> None:
    done = smmf("run", str(words), *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stdout == ""


def test_a_bad_flow_exits_2_with_its_location(write: Callable[[str, str], Path]) -> None:
    flow = write("bad.yaml", "nodes:\n  a: {type: mapp, expr: input}\n")
    done = smmf("run", str(flow))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {flow}:2:13: node 'a': unknown operator type 'mapp'")
    assert len(done.stderr.splitlines()) == 1


def test_a_failed_run_exits_1_with_one_line(write: Callable[[str, str], Path]) -> None:
    write("ops.py", "def store(x):\n    raise OSError('the disk is full')\n")
    flow = write("fails.yaml", "plugins: [ops]\nnodes:\n  a: {type: map, function: ops:store}\n")
    done = smmf("run", str(flow), "--input-json", "0")
    assert done.returncode == 1
    assert done.stderr == "error: node 'a' failed: OSError: the disk is full\n"
    debug = smmf("--debug", "run", str(flow), "--input-json", "0")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().endswith("error: node 'a' failed: OSError: the disk is full")
    assert "Traceback" in smmf("run", str(flow), "--input-json", "0", "--debug").stderr


@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_an_expression_that_fails_on_the_input_exits_2_naming_it_and_its_place(
    write: Callable[[str, str], Path], stream: str
) -> None:
    flow = write(
        "divide.yaml",
        """
        name: divide
        inputs: {q: str}
        nodes:
          digits: {type: streamify, expr: "input.q | list"}
          a: {type: transform_stream, expr: "10 // (chunk | int)"}
        edges: ["digits >> a"]
    """,
    )
    done = smmf("run", str(flow), "-i", "q=50", stream)
    assert done.returncode == 2
    assert done.stderr == (
        f"error: {flow}:5:3: flow 'divide', node 'a': expression '10 // (chunk | int)' "
        "failed: ZeroDivisionError: integer division or modulo by zero\n"
    )


def test_validate_reports_each_file(words: Path, write: Callable[[str, str], Path]) -> None:
    bad = write("bad.yaml", "nodes:\n  a: {type: map}\n")
    done = smmf("validate", str(words), str(bad))
    assert done.returncode == 2
    assert done.stdout.startswith(f"{words}: ok — flow 'words', 2 nodes, 1 edge, output 'head'")
    assert "inputs: text: str, n: int = 2" in done.stdout
    assert done.stderr == (
        f"error: {bad}:2:3: node 'a': needs a function: add `expr: <jinja2 "
        "expression>` (variables: input) or `function: module:name`\n"
    )


def test_a_default_of_the_wrong_type_fails_validate_and_run(
    write: Callable[[str, str], Path],
) -> None:
    flow = write(
        "default.yaml",
        'inputs:\n  n: {type: int, default: "abc"}\nnodes:\n  a: {type: map, expr: input.n}\n',
    )
    for command in ("validate", "run"):
        done = smmf(command, str(flow))
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr == f"error: {flow}:2:27: field 'inputs.n.default': 'abc' is not an int\n"


def test_a_bad_model_config_named_by_the_flow_points_at_its_models_line(
    write: Callable[[str, str], Path],
) -> None:
    flow = write("named.yaml", "models: missing.toml\nnodes:\n  a: {type: llm, model: x}\n")
    done = smmf("validate", str(flow))
    assert done.returncode == 2
    assert done.stderr == (
        f"error: {flow}:1:9: the model config named here: "
        f"{flow.parent / 'missing.toml'}: model config file not found\n"
    )


def test_control_characters_from_a_file_reach_the_terminal_escaped(
    write: Callable[[str, str], Path],
) -> None:
    flow = write("escape.yaml", 'nodes:\n  "a\\e[2Jb": {type: map, expr: input}\n')
    done = smmf("validate", str(flow))
    assert done.returncode == 2
    assert "\x1b" not in done.stderr
    assert "'a\\x1b[2Jb' is not a valid name" in done.stderr


def test_validate_every_shipped_flow() -> None:
    """``validate flows/*.yaml``: every flow checked, the sample-input file passed over."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "flows").glob("*.yaml"))
    flows = [f for f in files if not f.endswith(".input.yaml")]
    done = smmf("validate", *files)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": ok — flow") == len(flows) >= 5
    assert "flows/summarize.input.yaml: an input file (NAME.input.yaml), not a flow; skipped" in (
        done.stdout
    )
    assert "smollm2 → llama.cpp ×1 (round_robin)" in done.stdout
    assert "minilm → sentence-transformers ×1" in done.stdout
    assert "offline → proxy/openai ×1" in done.stdout


def test_validate_finds_an_unknown_model(write: Callable[[str, str], Path]) -> None:
    flow = write("model.yaml", "nodes:\n  a:\n    type: llm\n    model: smollm\n")
    done = smmf("validate", str(flow))
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"error: {flow}:4:12: node 'a': unknown model 'smollm'; did you mean 'smollm2'"
    )


def test_graph_mermaid_and_dot(words: Path) -> None:
    mermaid = smmf("graph", str(words))
    assert mermaid.returncode == 0
    assert mermaid.stdout.splitlines()[0] == "flowchart TD"
    assert "n_split --> n_head" in mermaid.stdout
    dot = smmf("graph", str(words), "--format", "dot")
    assert '"split" -> "head";' in dot.stdout


def test_graph_files(words: Path, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    svg, png = tmp_path / "g.svg", tmp_path / "g.png"
    assert smmf("graph", str(words), "--format", "svg", "-o", str(svg)).returncode == 0
    assert ET.parse(svg).getroot().tag.endswith("svg")
    from PIL import Image as image

    assert smmf("graph", str(words), "--format", "png", "-o", str(png)).returncode == 0
    with image.open(png) as picture:
        picture.load()
        assert picture.format == "PNG" and picture.width > 50


@pytest.mark.parametrize(
    "command",
    [["graph", "{flow}", "--format", "png"], ["schema"], ["export", "mydag:dag"]],
    ids=["graph", "schema", "export"],
)
@pytest.mark.parametrize(
    ("output", "why"),
    [
        ("missing/x.out", "the folder '{tmp}/missing' does not exist"),
        ("words.yaml/x.out", "'{tmp}/words.yaml' is a file, not a folder"),
        ("", "File '{tmp}' is a directory."),
    ],
    ids=["no-folder", "file-in-path", "a-folder"],
)
def test_an_output_that_cannot_be_written_exits_2_naming_it(
    words: Path, tmp_path: Path, command: list[str], output: str, why: str
) -> None:
    (tmp_path / "mydag.py").write_text(
        "from smmf_flow import DAG, MapOperator\n"
        "from smmf_flow.flowfile.functions import Expression\n\n"
        "with DAG('d') as dag:\n    MapOperator(Expression('input'), name='a')\n"
    )
    path = str(tmp_path / output) if output else str(tmp_path)
    args = [part.format(flow=words) for part in command]
    done = smmf(*args, "-o", path, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    reason = why.format(tmp=tmp_path)
    if output:
        reason = f"cannot write '{path}': {reason}"
    assert done.stderr == (
        f"error: Invalid value for '-o' / '--output': {reason} (see 'smmf-flow {args[0]} --help')\n"
    )


def test_an_output_without_permission_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    from smmf_flow.cli.common import write_output

    def refuse(self: Path, data: str, encoding: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_text", refuse)
    with pytest.raises(click.BadParameter) as caught:
        write_output("/srv/out/x.json", "{}")
    assert caught.value.format_message() == (
        "Invalid value for '-o' / '--output': cannot write '/srv/out/x.json': permission denied"
    )


def test_graph_rejects_an_unknown_format(words: Path) -> None:
    done = smmf("graph", str(words), "--format", "gif")
    assert done.returncode == 2 and "'gif' is not one of" in done.stderr


def test_export_then_run(tmp_path: Path, write: Callable[[str, str], Path]) -> None:
    write(
        "mydag.py",
        """
        from smmf_flow import DAG, MapOperator

        def split(text):
            return text.split()

        with DAG("anon") as dag:
            MapOperator(split, name="split") >> MapOperator(lambda ws: ws[0], name="first")
    """,
    )
    failed = smmf("export", "mydag:dag", cwd=tmp_path)
    assert failed.returncode == 2
    assert failed.stderr.startswith("error: node 'first': its function <function <lambda>")
    assert "cannot be written to a flow file" in failed.stderr

    write(
        "good.py",
        """
        from smmf_flow import DAG, JoinOperator, MapOperator
        from smmf_flow.flowfile.functions import Expression

        def words(text: str) -> list[str]:
            return text.split()

        def report(n: int, longest: str) -> str:
            return f"{n} words, longest {longest}"

        with DAG("stats") as dag:
            split = MapOperator(words, name="split")
            count = MapOperator(Expression("input | length"), name="count")
            pick = MapOperator(Expression("input | last"), name="pick")
            split >> [count, pick]
            [count, pick] >> JoinOperator(report, name="report")
    """,
    )
    out = tmp_path / "stats.yaml"
    done = smmf("export", "good:dag", "-o", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.startswith("# exported by `smmf-flow export good:dag`\n")
    assert "plugins:\n- good\n" in text and "function: good:words" in text
    run = smmf("run", str(out), "--input-json", '"a bb ccc"', cwd=tmp_path)
    assert (run.returncode, run.stdout) == (0, "3 words, longest ccc\n"), run.stderr


def test_a_module_with_a_syntax_error_is_reported_at_its_line(
    tmp_path: Path, write: Callable[[str, str], Path]
) -> None:
    write("brokenmod.py", "def f(:\n")
    write("uses.yaml", "plugins: [brokenmod]\nnodes:\n  a: {type: map, expr: input}\n")
    exported = smmf("export", "brokenmod:dag", cwd=tmp_path)
    assert exported.returncode == 2
    assert exported.stderr.startswith(
        "error: cannot import brokenmod: SyntaxError at brokenmod.py:1: "
    ), exported.stderr
    assert len(exported.stderr.splitlines()) == 1
    write("raising.py", "raise RuntimeError('no config here')\n")
    raised = smmf("export", "raising:dag", cwd=tmp_path)
    assert (raised.returncode, raised.stderr) == (
        2,
        "error: cannot import raising: RuntimeError: no config here "
        "(see 'smmf-flow export --help')\n",
    )
    validated = smmf("validate", "uses.yaml", cwd=tmp_path)
    assert validated.returncode == 2
    assert validated.stderr.startswith(
        "error: uses.yaml:1:11: cannot import plugin 'brokenmod': SyntaxError at brokenmod.py:1: "
    ), validated.stderr


def test_export_needs_module_colon_var() -> None:
    done = smmf("export", "examples.chain")
    assert done.returncode == 2 and "expected MODULE:DAG_VAR" in done.stderr


def test_models_list_never_prints_secrets(write: Callable[[str, str], Path]) -> None:
    config = write(
        "models.toml",
        """
        [models]
        default_llm = "remote"

        [[models.llms]]
        name = "remote"
        provider = "proxy/openai"
        api_base = "http://127.0.0.1:9/v1"
        api_key = "${env:SMMF_TEST_KEY}"
        remote_model = "m"
    """,
    )
    secret = "sk-test-0123456789abcdef"
    done = smmf("models", "list", "--models", str(config), env={"SMMF_TEST_KEY": secret})
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("remote"))
    assert row.split() == [
        "remote",
        "llm",
        "proxy/openai",
        "1",
        "http://127.0.0.1:9/v1",
        "set",
        "default",
        "llm",
    ]
    as_json = smmf(
        "models", "list", "--models", str(config), "--json", env={"SMMF_TEST_KEY": secret}
    )
    assert secret not in as_json.stdout
    assert json.loads(as_json.stdout)["entries"][0]["api_key"] == "set"


def test_models_list_of_the_default_config() -> None:
    done = smmf("models", "list")
    assert done.returncode == 0
    assert done.stdout.startswith("models: ")
    names = [line.split()[0] for line in done.stdout.splitlines()[3:]]
    assert names == ["smollm2", "minilm"]


def test_a_bad_model_config_exits_2(write: Callable[[str, str], Path]) -> None:
    config = write("bad.toml", "[models]\nllms = 3\n")
    done = smmf("models", "list", "--models", str(config))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {config}") and len(done.stderr.splitlines()) == 1


def test_help_and_version() -> None:
    helped = smmf("--help")
    assert helped.returncode == 0
    for command in ("run", "validate", "graph", "models", "export"):
        assert command in helped.stdout
    assert smmf("--version").stdout.startswith("smmf-flow, version ")

"""Reading YAML with the position of every value, safely."""

from __future__ import annotations

import pytest

from smmf_flow.errors import FlowFileError
from smmf_flow.flowfile.loader import read_flow_file, read_flow_text


def test_every_value_and_key_keeps_its_line_and_column() -> None:
    doc = read_flow_text("nodes:\n  a:\n    type: map\n    after: [x, y]\n", "f.yaml")
    assert doc.data == {"nodes": {"a": {"type": "map", "after": ["x", "y"]}}}
    assert doc.where(("nodes", "a", "type")) == (3, 11)
    assert doc.where(("nodes", "a", "type"), key=True) == (3, 5)
    assert doc.where(("nodes", "a", "after", 1)) == (4, 16)


def test_a_missing_path_falls_back_to_its_nearest_parent() -> None:
    doc = read_flow_text("nodes:\n  a: {type: map}\n")
    assert doc.where(("nodes", "a", "no", "such")) == doc.where(("nodes", "a"))


@pytest.mark.parametrize("word", ["on", "off", "yes", "no", "y", "n"])
def test_yaml_1_1_words_stay_strings(word: str) -> None:
    assert read_flow_text(f"{word}: {word}").data == {word: word}


def test_true_and_false_are_booleans() -> None:
    assert read_flow_text("a: true\nb: False").data == {"a": True, "b": False}


def test_merge_keys_work() -> None:
    doc = read_flow_text("base: &b {type: map, timeout: 2}\nnode: {<<: *b, expr: input}\n")
    assert doc.data["node"] == {"type": "map", "timeout": 2, "expr": "input"}


def test_python_tags_on_scalars_are_refused() -> None:
    with pytest.raises(FlowFileError, match=r"f.yaml:1:4: invalid YAML: .*python/name"):
        read_flow_text("a: !!python/name:os.system ''", "f.yaml")


def test_missing_file_names_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FlowFileError, match=r"nope\.yaml: flow file not found"):
        read_flow_file(tmp_path / "nope.yaml")


def test_a_directory_is_not_a_flow(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FlowFileError, match="is a directory"):
        read_flow_file(tmp_path)


def test_non_utf8_file_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(FlowFileError, match="not UTF-8"):
        read_flow_file(path)


def test_multiple_documents_are_refused() -> None:
    with pytest.raises(FlowFileError, match="invalid YAML"):
        read_flow_text("a: 1\n---\nb: 2\n")

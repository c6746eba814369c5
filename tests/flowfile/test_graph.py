"""Drawing flows: Mermaid and DOT text, an SVG that parses, a PNG that opens."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from smmf_flow.flowfile.drawing import layout, render_png, render_svg
from smmf_flow.flowfile.flow import Flow
from smmf_flow.flowfile.graph import to_dot, to_mermaid, view_of

FLOW = """
    name: shapes
    nodes:
      start: {type: input}
      route:
        type: branch
        branches: [{when: "input > 1", to: big}]
        default: small
      big: {type: map, expr: "'big'"}
      small: {type: map, expr: "'small'"}
      out: {type: join, after: [big, small]}
      prompt: {type: prompt, template: "{{ input }}", after: out}
      answer: {type: llm, model: smollm2, stream: true, after: prompt}
    edges: ["start >> route"]
"""


@pytest.fixture
def view(flow_of: Callable[..., Flow]):  # type: ignore[no-untyped-def]
    flow = flow_of(FLOW)
    return view_of(flow.dag, {n: flow.kind(n) for n in flow.spec.nodes})


def test_mermaid(view) -> None:  # type: ignore[no-untyped-def]
    text = to_mermaid(view)
    assert text.startswith("flowchart TD\n")
    assert 'n_route{"<b>route</b><br/><i>branch</i>"}' in text
    assert 'n_start(["<b>start</b><br/><i>input</i>"])' in text
    assert 'n_answer["<b>answer</b><br/><i>llm</i><br/>smollm2"]' in text
    assert 'n_route -->|"input #gt; 1"| n_big' in text
    assert 'n_route -.->|"default"| n_small' in text
    assert text.count("-->") + text.count("-.->") == 7


def test_dot(view) -> None:  # type: ignore[no-untyped-def]
    text = to_dot(view)
    assert text.startswith('digraph "shapes" {')
    assert '"route" [label="route\\n(branch)", shape=diamond];' in text
    assert '"route" -> "small" [label="default", style=dashed];' in text
    assert text.rstrip().endswith("}")


def test_layout_puts_each_node_below_its_parents(view) -> None:  # type: ignore[no-untyped-def]
    boxes, width, height = layout(view)
    for arrow in view.arrows:
        assert boxes[arrow.up].y + boxes[arrow.up].h < boxes[arrow.down].y
    assert all(b.x - b.w / 2 >= 0 and b.x + b.w / 2 <= width for b in boxes.values())
    assert max(b.y + b.h for b in boxes.values()) < height


def test_svg_is_well_formed_and_shows_every_node(view) -> None:  # type: ignore[no-untyped-def]
    root = ET.fromstring(render_svg(view))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"start", "route", "big", "small", "out", "prompt", "answer"} <= texts
    assert len(list(root.iter("{http://www.w3.org/2000/svg}line"))) == 7


def test_png_opens(view) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image as image_module

    data = render_png(view)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with image_module.open(io.BytesIO(data)) as image:
        image.load()
        assert image.width > 100 and image.height > 100
        assert len(image.getcolors(1 << 20)) > 2  # something was drawn

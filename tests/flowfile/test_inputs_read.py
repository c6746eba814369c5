"""A first node's template variables and ``input_key`` are checked against the
flow's declared inputs before it runs (``Flow.check_inputs_read``): a typo is a
located ``FlowError``, not a failed run; what may be absent is let through."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smmf_flow.errors import FlowError
from smmf_flow.flowfile.flow import Flow

HEAD = """
name: reads
inputs:
  question: str
  extra: {type: str, default: ""}
nodes:
"""


@pytest.mark.parametrize(
    "template",
    [
        "{{ question }} {{ extra }}",
        "{{ input.question }}",  # the whole input is always there
        "{% if hint is defined %}{{ hint }}{% endif %}{{ question }}",  # optional
        "{% set q = question %}{% for i in range(2) %}{{ q }}{{ loop.index }}{% endfor %}",
        "no variables at all",
    ],
)
def test_what_a_first_template_may_read(flow_of: Callable[..., Flow], template: str) -> None:
    flow = flow_of(f"{HEAD}  p:\n    type: prompt\n    template: {template!r}\n")
    flow.check_inputs_read()


def test_a_typo_names_the_input_it_meant(flow_of: Callable[..., Flow]) -> None:
    flow = flow_of(f"{HEAD}  p:\n    type: prompt\n    system: '{{{{ extar }}}}'\n")
    with pytest.raises(FlowError) as caught:
        flow.check_inputs_read()
    assert caught.value.node == "p" and caught.value.param == "system"
    assert "reads 'extar', which is not an input of the flow; did you mean 'extra'?" in str(
        caught.value
    )
    assert "(its inputs: question, extra)" in str(caught.value)


def test_later_nodes_and_flows_without_inputs_are_not_checked(
    flow_of: Callable[..., Flow],
) -> None:
    # a later node reads what the node before it made, not the flow's inputs
    later = f"{HEAD}  a:\n    type: map\n    expr: '{{\"x\": input.question}}'\n"
    later += "  p:\n    type: prompt\n    template: '{{ x }}'\n    after: a\n"
    flow_of(later).check_inputs_read()
    flow_of(
        "name: any\nnodes:\n  p:\n    type: prompt\n    template: '{{ x }}'\n"
    ).check_inputs_read()

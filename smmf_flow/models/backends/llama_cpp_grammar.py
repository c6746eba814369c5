"""The grammar that holds a llama.cpp answer to a JSON schema, made safe to ask for.

The schema may come from an HTTP caller, and llama-cpp-python trusts it twice over:
its converter spells every repetition out (``minItems: 100000000`` is a list of a
hundred million rules: the process runs out of memory), and when llama.cpp's
parser refuses the grammar it made (``maxLength: 2000`` nests past the parser's
"sane defaults"), the sampler it adds to the chain is a null pointer and the next
token kills the process (SIGSEGV), every tenant's requests with it. So a schema
asking for more than ``MAX_REPEAT`` repetitions is refused before conversion, and
the grammar is parsed once by llama.cpp itself before any sampling: a refusal
there is a ``RequestRefused`` (400), not a crash.
"""

from __future__ import annotations

import json
import re
from typing import Any

from smmf_flow.errors import RequestRefused
from smmf_flow.models.backends.support import schema_of
from smmf_flow.models.schema_walk import subschemas
from smmf_flow.models.types import ChatRequest

#: the most repetitions one keyword or quantifier may ask for (llama.cpp's parser
#: takes a string's ``maxLength`` up to about 1,000, and refuses 1,500)
MAX_REPEAT = 1000
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength")
_QUANTIFIER = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")

# llama-cpp-python's schema converter lets a JSON string hold raw control characters
# (a newline typed into a string), which JSON itself forbids, so such an answer would
# fail to parse; its generic JSON grammar already excludes them, as this rule does.
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def strict_strings(gbnf: str) -> str:
    """``gbnf`` with JSON strings that cannot contain raw control characters."""
    return gbnf.replace(_LOOSE_CHAR, _STRICT_CHAR)


def too_many_repeats(schema: Any) -> str | None:
    """What in ``schema`` asks for more than ``MAX_REPEAT`` repetitions, or None."""
    for path, sub in subschemas(schema):
        for keyword in _COUNTS:
            value = sub.get(keyword)
            if isinstance(value, int) and value > MAX_REPEAT:
                return f"{keyword} = {value} at {path}"
        pattern = sub.get("pattern")
        if isinstance(pattern, str):
            for quantifier in _QUANTIFIER.finditer(pattern):
                if any(n and int(n) > MAX_REPEAT for n in quantifier.groups()):
                    return f"the quantifier {quantifier.group()} of the pattern at {path}"
    return None


def grammar_for(lib: Any, vocab: Any, request: ChatRequest, model: str) -> Any:
    """The ``LlamaGrammar`` for ``request``'s response format (None for text);
    ``RequestRefused`` for a schema llama.cpp cannot take. Runs on the engine thread
    (``vocab`` is the model's)."""
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    schema = schema_of(request)
    if schema is None:
        from llama_cpp.llama_grammar import JSON_GBNF

        return lib.LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    def refused(why: str) -> RequestRefused:
        return RequestRefused(
            f"model '{model}': llama.cpp cannot turn the response_format JSON schema "
            f"into a grammar: {why}",
            model=model,
        )

    too_many = too_many_repeats(schema)
    if too_many is not None:
        raise refused(
            f"{too_many} asks for more than {MAX_REPEAT} repetitions, which its grammar "
            "spells out one by one"
        )
    try:
        gbnf = strict_strings(json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:  # the converter also asserts on schemas it cannot use
        raise refused(str(exc)) from exc
    parsed = lib.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
    if not parsed:  # llama-cpp-python would add this null sampler, and crash on it
        raise refused(
            "llama.cpp's grammar parser refused the grammar made from it (a pattern "
            "with an escape its grammars lack, such as \\w or \\d inside [...])"
        )
    lib.llama_sampler_free(parsed)
    return lib.LlamaGrammar.from_string(gbnf, verbose=False)

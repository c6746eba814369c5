"""``python -m smmf_flow.models.backends.llama_cpp_server [llama_cpp.server options]``:
llama-cpp-python's OpenAI-compatible server, loading models as the in-process
llama.cpp backend does (no weight repacking, see ``no_weight_repacking``).

Plain ``python -m llama_cpp.server`` crashes on the first prompt on a CPU with AMX;
the tests and benchmarks that need a real OpenAI-compatible upstream start this one,
and so can a user on such a CPU.
"""

from __future__ import annotations

import runpy

import llama_cpp

from smmf_flow.models.backends.llama_cpp import no_weight_repacking


def main() -> None:
    no_weight_repacking(llama_cpp)
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

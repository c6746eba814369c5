"""Adapters into other ecosystems, each behind its own extra.

``smmf_flow.integrations.langchain`` (``pip install 'smmf-flow[langchain]'``) and
``smmf_flow.integrations.llama_index`` (``pip install 'smmf-flow[llama-index]'``)
put registry models and flows inside LangChain and LlamaIndex pipelines, and
LangChain runnables inside flows. Importing this package imports neither
library: each adapter module imports its own when it is imported, and a missing
extra is a ``MissingDependency`` that says what to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from smmf_flow.errors import MissingDependency


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{module} is not installed (needed by smmf_flow.integrations); "
            f"pip install 'smmf-flow[{extra}]'"
        ) from exc


__all__ = ["require"]

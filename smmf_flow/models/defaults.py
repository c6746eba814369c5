"""Where the default model config is: one function, the one place that decides.

``$SMMF_MODELS`` names a TOML file; without it, the config shipped inside the
package (``smmf_flow.configs/default.toml``, read through ``importlib.resources``)
is the default. Never the working directory and never a path relative to the
source tree, so an installed wheel, a checkout and a script started from any
folder all find the same file. Nothing here loads a registry: the caller does,
and owns it (``ModelRegistry.default()``).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from smmf_flow.errors import ConfigError

#: the environment variable that names the default model config
MODELS_ENV = "SMMF_MODELS"
#: the package holding the shipped configs, and the default's file name in it
CONFIGS_PACKAGE = "smmf_flow.configs"
DEFAULT_FILE = "default.toml"


def default_config() -> Path:
    """The TOML named by ``$SMMF_MODELS``, else the packaged ``default.toml``."""
    named = os.environ.get(MODELS_ENV)
    if named:
        return Path(named).expanduser()
    try:
        shipped = resources.files(CONFIGS_PACKAGE) / DEFAULT_FILE
    except ModuleNotFoundError:
        shipped = None
    # an installed package is a folder, so its resource is a real file with a path
    if not isinstance(shipped, Path) or not shipped.is_file():
        raise ConfigError(
            f"the packaged default model config ({CONFIGS_PACKAGE}/"
            f"{DEFAULT_FILE}) is missing: reinstall smmf-flow, or set "
            f"{MODELS_ENV} to a TOML model config"
        )
    return shipped


__all__ = ["CONFIGS_PACKAGE", "DEFAULT_FILE", "MODELS_ENV", "default_config"]

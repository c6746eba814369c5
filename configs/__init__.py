"""The shipped model configs, installed as the package ``smmf_flow.configs``.

``default.toml`` is the default model config (``smmf_flow.models.default_config()``
finds it with ``importlib.resources``, so a wheel and a checkout agree); the other
files are examples to copy or name with ``--models``.
"""

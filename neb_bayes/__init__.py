"""neb_bayes: exact Bayesian diagnostic inference for neuro-endocrine balance.

The data flow is the layout: case -> evidence -> model/inference -> posterior -> report.
The public API (``read_case``, ``infer``, ``load_model``) is imported on first use, so that
``import neb_bayes`` stays cheap for the command line.
"""

from __future__ import annotations

from typing import Any

__all__ = ["infer", "read_case", "load_model", "package_version", "__version__"]

_LAZY = {
    "infer": ("neb_bayes.api", "infer"),
    "package_version": ("neb_bayes.config", "package_version"),
    "read_case": ("neb_bayes.case", "read_case"),
    "load_model": ("neb_bayes.model.compiled", "load_model"),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from neb_bayes.config import package_version

        return package_version()
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'neb_bayes' has no attribute {name!r}")

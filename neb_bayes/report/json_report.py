"""The JSON report: ``Result.to_dict()`` serialised, stable key order."""

from __future__ import annotations

import json

from neb_bayes.posterior import Result


def render_json(result: Result) -> str:
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"

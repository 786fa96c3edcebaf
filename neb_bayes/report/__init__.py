"""Render a :class:`~neb_bayes.posterior.Result` for machines (JSON) and people (Markdown)."""

from neb_bayes.report.html import render_html
from neb_bayes.report.json_report import render_json
from neb_bayes.report.markdown import render_markdown

RENDERERS = {"json": render_json, "md": render_markdown, "html": render_html}

__all__ = ["render_html", "render_json", "render_markdown", "RENDERERS"]

"""A plain server-rendered dashboard: models, their aliases and latest metrics."""

from __future__ import annotations

from html import escape

from yarnit.registry import ModelRegistry


def render_dashboard(registry: ModelRegistry) -> str:
    rows = []
    for model in registry.list_models():
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(model["aliases"].items())) or "—"
        latest = registry.get(model["name"], model["latest_version"]) if model["latest_version"] else None
        auc = latest.metrics.get("auc_holdout") if latest else None
        rows.append(
            f"<tr><td>{escape(model['name'])}</td><td>{model['n_versions']}</td><td>{escape(aliases)}</td>"
            f"<td>{'' if auc is None else f'{auc:.4f}'}</td></tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="4">No models yet: run <code>yarnit demo</code>.</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>yarnit</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}</style></head>
<body><h1>yarnit</h1><h2>Models</h2>
<table><thead><tr><th>model</th><th>versions</th><th>aliases</th><th>latest AUC (holdout)</th></tr></thead>
<tbody>
{body}
</tbody></table>
<p><a href="/metrics">metrics</a> · <a href="/docs">API</a></p></body></html>"""


__all__ = ["render_dashboard"]

"""The dashboard's page shell and small HTML helpers: one stylesheet, a skip link, the navigation.

Every page is server-rendered HTML with inline CSS (the charts' stylesheet comes from
:mod:`yarnit.charts`, shared with the demo report) and one script served from the
package (``/ui/static/dashboard.js``, only for the action forms). Every value that reaches the
page goes through :func:`esc`; helpers take plain values, never markup, unless their name says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime

from yarnit.charts import CHART_CSS, esc

DASH = "—"

NAV = (("Overview", "/"), ("SLOs", "/ui/slos"), ("Incidents", "/ui/incidents"), ("Data", "/ui/data"),
       ("Runs", "/ui/runs"), ("Readiness", "/ui/readiness"))

CSS = """
:root{--fg:#1a202c;--muted:#566170;--bg:#fff;--line:#d8dee6;--faulted:#c53030;--clean:#2b6cb0;--ok:#2f855a;
--warn:#b7791f;--focus:#2b6cb0}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}a{color:#22539a}a:focus,button:focus,input:focus,select:focus,summary:focus
{outline:3px solid var(--focus);outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:.5rem;top:.5rem;background:#fff;padding:.3rem .6rem;z-index:9}
header.top{border-bottom:1px solid var(--line);background:#f7f8fa}
header.top div{max-width:1240px;margin:0 auto;padding:.5rem 1.25rem;display:flex;flex-wrap:wrap;gap:.4rem 1.5rem;
align-items:center}header.top strong{font-size:1.15rem}nav ul{list-style:none;display:flex;flex-wrap:wrap;
gap:.2rem 1rem;margin:0;padding:0}nav a[aria-current]{font-weight:700;text-decoration:none;color:var(--fg)}
main{max-width:1240px;margin:0 auto;padding:.8rem 1.25rem 2rem}h1{font-size:1.45rem;margin:.3rem 0 .6rem}
h2{font-size:1.15rem;margin:1.4rem 0 .4rem}h3{font-size:1rem;margin:1rem 0 .3rem}.muted{color:var(--muted)}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}caption{text-align:left;
font-weight:600;padding:.3rem 0}th,td{border-bottom:1px solid var(--line);padding:.3rem .5rem;text-align:left;
vertical-align:top}thead th{background:#f4f6f9;white-space:nowrap}td.num{text-align:right;font-variant-numeric:
tabular-nums}.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,360px),1fr));gap:1rem}
.card{border:1px solid var(--line);border-radius:6px;padding:.6rem .9rem}.card h2{margin-top:.1rem}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .8rem;margin:.3rem 0}dl.kv dt{font-weight:600}
dl.kv dd{margin:0}.state{display:inline-block;padding:0 .45em;border-radius:3px;font-size:.85em;font-weight:600;
border:1px solid currentColor}.bad{color:var(--faulted)}.ok{color:var(--ok)}.warn{color:var(--warn)}
meter{width:9rem;height:1rem;vertical-align:middle}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr));gap:1rem}
figure{margin:.6rem 0;border:1px solid var(--line);border-radius:6px;padding:.5rem;overflow-x:auto}
main>figure,main>section>figure{max-width:780px}.charts figure{margin:0}
figcaption{font-weight:600;margin-bottom:.3rem}details{margin:.4rem 0;border:1px solid var(--line);
border-radius:6px;padding:.4rem .7rem}summary{cursor:pointer}pre{white-space:pre-wrap;word-break:break-word;
background:#f7f8fa;padding:.7rem;border-radius:4px;font-size:.85rem}
.actions{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,400px),1fr));gap:.2rem 1.2rem}
form.action{display:flex;flex-wrap:wrap;gap:.4rem;align-items:center;margin:.2rem 0}
form.action input[name=reason]{flex:1 1 10rem;min-width:8rem}form.action button{flex:0 0 11.5rem}
ul.budgets{list-style:none;padding:0;margin:.2rem 0}ul.budgets li{display:grid;grid-template-columns:
minmax(8rem,11rem) 9.5rem 3.5rem auto;gap:.5rem;align-items:center}ul.budgets meter{width:100%}
.charts{margin-top:.6rem}button{font:inherit;padding:.2rem .7rem;
border:1px solid #22539a;background:#22539a;color:#fff;border-radius:4px;cursor:pointer}
button.danger{background:var(--faulted);border-color:var(--faulted)}input,select{font:inherit;padding:.15rem .3rem}
form.picker{display:flex;flex-wrap:wrap;gap:.4rem .9rem;align-items:center;margin:.3rem 0 .5rem}
.card-md table{width:auto;max-width:100%}
#token-box{display:flex;gap:.4rem;align-items:center;margin-left:auto}#action-status{margin:0 0 .4rem;
font-weight:600}
@media (max-width:640px){body{font-size:14px}main{padding:.5rem .6rem}ul.budgets li{grid-template-columns:
1fr 6rem 3.5rem;}ul.budgets li .state{display:none}header.top div{padding:.4rem .6rem}
th,td{padding:.25rem}#token-box{margin-left:0}svg{min-width:0}}
""" + CHART_CSS


def page(title: str, body: str, *, current: str = "", actions: bool = False) -> str:
    """A whole page: ``body`` is markup the caller built (escaped already); ``title`` is plain text."""
    links = "".join(f'<li><a href="{href}"{" aria-current=page" if href == current else ""}>{esc(name)}</a></li>'
                    for name, href in NAV)
    token = ('<div id="token-box"><label for="token">API token</label><input id="token" type="password" '
             'autocomplete="off" size="14" placeholder="for actions"></div>') if actions else ""
    script = '<script src="/ui/static/dashboard.js" defer></script>' if actions else ""
    status = '<p id="action-status" role="status" aria-live="polite"></p>' if actions else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>{esc(title)} · yarnit</title><style>{CSS}</style>{script}</head><body>"
            f'<a class="skip" href="#main">Skip to content</a><header class="top"><div><strong>yarnit</strong>'
            f'<nav aria-label="Dashboard"><ul>{links}</ul></nav>{token}</div></header>'
            f'<main id="main" tabindex="-1"><h1>{esc(title)}</h1>{status}{body}</main></body></html>')


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, caption: str = "", empty: str = "Nothing yet.",
          numeric: Sequence[int] = ()) -> str:
    """A table whose cells are markup (escape values with :func:`esc` or the ``fmt_*`` helpers first)."""
    rows = list(rows)
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    if not rows:
        body = f'<tr><td colspan="{len(headers)}" class="muted">{esc(empty)}</td></tr>'
    else:
        body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{c}</td>'
                                        for i, c in enumerate(r)) + "</tr>" for r in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def fmt(value: object, spec: str = ".4g") -> str:
    """A number formatted with ``spec`` (escaped), or a dash."""
    v = num(value)
    return DASH if v is None else esc(format(v, spec))


def fmt_pct(value: object, digits: int = 1) -> str:
    v = num(value)
    return DASH if v is None else esc(f"{v * 100:.{digits}f}%")


def parse(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def fmt_time(value: object) -> str:
    """An instant as ``YYYY-MM-DD HH:MM`` (UTC as stored), in a ``<time>`` element."""
    at = parse(value)
    if at is None:
        return DASH
    return f'<time datetime="{esc(at.isoformat())}">{esc(at.strftime("%Y-%m-%d %H:%M"))}</time>'


def fmt_age(seconds: float | None) -> str:
    """A duration such as ``3.2 h`` or ``2.0 d`` (escaped)."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    if seconds < 3600:
        return esc(f"{seconds / 60:.0f} min")
    if seconds < 2 * 86400:
        return esc(f"{seconds / 3600:.1f} h")
    return esc(f"{seconds / 86400:.1f} d")


def state(value: object) -> str:
    """A state word as a badge, coloured by what it means (firing, failed: bad; ok, succeeded: good)."""
    word = str(value if value is not None else DASH)
    bad = {"firing", "failed", "fail", "error", "page", "open", "aborted", "exhausted", "interrupted", "rolled_back"}
    good = {"ok", "succeeded", "pass", "resolved", "completed", "done", "promoted", "cached", "healthy", "trained"}
    css = "bad" if word in bad else "ok" if word in good else "warn" if word in {"ticket", "marginal",
                                                                                "no_data", "mitigated"} else ""
    return f'<span class="state {css}">{esc(word)}</span>'


def link(href: str, text: object) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def action_form(endpoint: str, label: str, confirm: str, *, fields: str = "", danger: bool = False,
                reason: bool = True, payload: str = "") -> str:
    """A form the page script sends as a token-protected POST after a confirmation.

    ``endpoint``: the API path; ``payload``: extra JSON fields (a JSON object's text, escaped here);
    ``fields``: extra inputs (markup) whose ``name`` becomes a JSON field.
    """
    why = ('<input name="reason" required maxlength="1000" placeholder="reason (kept in the audit history)" '
           f'aria-label="Reason for: {esc(label)}">') if reason else ""
    return (f'<form class="action" data-endpoint="{esc(endpoint)}" data-confirm="{esc(confirm)}" '
            f'data-payload="{esc(payload or "{}")}">{fields}{why}'
            f'<button type="submit"{" class=danger" if danger else ""}>{esc(label)}</button></form>')


__all__ = ["CSS", "DASH", "action_form", "esc", "fmt", "fmt_age", "fmt_pct", "fmt_time", "link", "num", "page",
           "parse", "state", "table"]

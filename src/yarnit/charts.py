"""Server-rendered inline SVG charts for the operate-demo report and the dashboard (no JavaScript, no external files).

The report page must be one file that opens anywhere, offline, so each chart is a string of SVG
built here: a ``viewBox`` that scales to the page width, a ``<title>`` and ``<desc>`` for screen
readers (referenced by ``aria-labelledby``), a legend drawn inside the chart, and a native ``<title>``
tooltip on every point and bar. Every piece of text that reaches the SVG goes through :func:`esc`;
callers pass plain strings, never markup. Colours come from CSS classes where the series are fixed
(so the page's stylesheet decides them) and from :data:`PALETTE` where their number is not.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PALETTE = ("#2b6cb0", "#2f855a", "#6b46c1", "#0987a0", "#4a5568", "#b7791f", "#c53030", "#97266d")
FALLBACK_COLOUR = "#dd8a0e"
ERROR_COLOUR = "#c53030"
WIDTH, PAD_L, PAD_R, PAD_T, PAD_B = 640, 64, 28, 58, 34


def esc(value: object) -> str:
    """Escape any value for HTML text and attribute values.

    >>> esc('<script>alert("x")</script>')
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
    """
    return html.escape(str(value), quote=True)


def linear_scale(d0: float, d1: float, r0: float, r1: float) -> Callable[[float], float]:
    """Map the domain [d0, d1] onto the range [r0, r1]; a zero-width domain maps to the range's middle.

    >>> s = linear_scale(0, 10, 100, 200)
    >>> s(0), s(5), s(10)
    (100.0, 150.0, 200.0)
    >>> linear_scale(3, 3, 0, 50)(3)
    25.0
    """
    if d1 == d0:
        return lambda _v: (r0 + r1) / 2
    k = (r1 - r0) / (d1 - d0)
    return lambda v: r0 + (v - d0) * k


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten).

    >>> nice_ticks(0, 0.047)
    [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]
    >>> nice_ticks(0, 0)
    [0.0, 1.0]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [float(lo), lo + 1.0] if math.isfinite(lo) else [0.0, 1.0]
    raw = (hi - lo) / max(n, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(lo / step + 1e-9)
    stop = math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(start, stop + 1)]


def path_d(points: Sequence[tuple[float, float] | None]) -> str:
    """SVG path data through ``points``; a ``None`` breaks the line (a day with no data is not drawn as zero).

    >>> path_d([(0, 1), (2, 3.5), None, (4, 5)])
    'M0.0 1.0L2.0 3.5M4.0 5.0'
    """
    out: list[str] = []
    pen_down = False
    for p in points:
        if p is None:
            pen_down = False
            continue
        out.append(f"{'L' if pen_down else 'M'}{p[0]:.1f} {p[1]:.1f}")
        pen_down = True
    return "".join(out)


@dataclass(frozen=True)
class Series:
    """One line: a name for the legend, a CSS class for its colour, one value (or None) per x position."""

    name: str
    css: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Window:
    """A shaded x interval (a fault window) in x units (days since the start), labelled at the top."""

    label: str
    x0: float
    x1: float


def _frame(chart_id: str, title: str, desc: str, height: int, body: str, width: int = WIDTH) -> str:
    return (f'<svg viewBox="0 0 {width} {height}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
            f'id="{chart_id}"><title id="{chart_id}-t">{esc(title)}</title>'
            f'<desc id="{chart_id}-d">{esc(desc)}</desc>{body}</svg>')


def _legend(items: Sequence[tuple[str, str]], y: float = 14) -> str:
    """Legend swatches along the top: (label, css class or '#colour')."""
    out, x = [], float(PAD_L)
    for label, colour in items:
        paint = f'fill="{colour}"' if colour.startswith("#") else f'class="{colour}"'
        out.append(f'<rect x="{x:.0f}" y="{y - 9}" width="12" height="10" {paint}/>'
                   f'<text x="{x + 16:.0f}" y="{y}" class="lg">{esc(label)}</text>')
        x += 28 + 7.2 * min(len(label), 28)
    return '<g class="legend">' + "".join(out) + "</g>"


def _windows(windows: Sequence[Window], x: Callable[[float], float], x_max: float, top: float,
             bottom: float) -> str:
    out = []
    for i, w in enumerate(windows):
        x0, x1 = x(max(0.0, min(w.x0, x_max))), x(max(0.0, min(w.x1, x_max)))
        if x1 - x0 < 3:  # a one-hour fault on a 30-day axis would be invisible
            x1 = x0 + 3
        ly = top - 20 + 12 * (i % 2)  # labels sit above the plot, staggered so neighbours stay readable
        out.append(f'<g class="win"><title>{esc(w.label)}</title><rect x="{x0:.1f}" y="{top:.1f}" '
                   f'width="{x1 - x0:.1f}" height="{bottom - top:.1f}"/><line x1="{x0:.1f}" x2="{x0:.1f}" '
                   f'y1="{ly + 2:.1f}" y2="{top:.1f}"/><text x="{x0 + 2:.1f}" y="{ly:.1f}">{esc(w.label[:24])}</text></g>')
    return "".join(out)


def _axes(x: Callable[[float], float], y: Callable[[float], float], ticks: Sequence[float], x_labels: Sequence[str],
          y_format: Callable[[float], str], bottom: float) -> str:
    out = []
    for t in ticks:
        out.append(f'<line class="grid" x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
                   f'<text class="ax" x="{PAD_L - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{esc(y_format(t))}</text>')
    step = max(1, math.ceil(len(x_labels) / 8))
    for i in range(0, len(x_labels), step):
        out.append(f'<text class="ax" x="{x(i + 0.5):.1f}" y="{bottom + 18:.1f}" text-anchor="middle">'
                   f"{esc(x_labels[i])}</text>")
    out.append(f'<line class="axis" x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{bottom:.1f}" y2="{bottom:.1f}"/>')
    return "".join(out)


def _hlines(lines: Sequence[tuple[str, float]], y: Callable[[float], float]) -> str:
    """Dashed horizontal reference lines (an alert threshold, a budget's zero), labelled at the right end."""
    out = []
    for i, (label, value) in enumerate(lines):
        lx = WIDTH - PAD_R - 2 - 150 * i  # side by side, so labels of close thresholds do not overprint
        out.append(f'<g class="hline"><title>{esc(label)}</title><line x1="{PAD_L}" x2="{WIDTH - PAD_R}" '
                   f'y1="{y(value):.1f}" y2="{y(value):.1f}"/><text x="{lx}" y="{y(value) - 3:.1f}" '
                   f'text-anchor="end">{esc(label[:32])}</text></g>')
    return "".join(out)


def svg_line_chart(series: Sequence[Series], shaded_windows: Sequence[Window], *, chart_id: str, title: str,
                   desc: str, x_labels: Sequence[str], y_format: Callable[[float], str] = str,
                   height: int = 280, hlines: Sequence[tuple[str, float]] = ()) -> str:
    """A line chart of one value per x position (day), with shaded, labelled windows behind the lines.

    ``hlines``: (label, value) reference lines drawn dashed across the plot (the dashboard's alert thresholds).

    >>> svg = svg_line_chart([Series("clean", "s-clean", [1.0, 2.0, None])], [Window("<f>", 1, 2)],
    ...                      chart_id="c", title="T", desc="D", x_labels=["a", "b", "c"])
    >>> svg.count("<svg"), "&lt;f&gt;" in svg, "<f>" in svg
    (1, True, False)
    """
    n = max((len(s.values) for s in series), default=0)
    bottom = height - PAD_B
    finite = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    finite += [v for _label, v in hlines if math.isfinite(v)]
    ticks = nice_ticks(min([0.0, *finite]), max(finite, default=1.0))
    x = linear_scale(0, max(n, 1), PAD_L, WIDTH - PAD_R)
    y = linear_scale(ticks[0], ticks[-1], bottom, PAD_T)
    body = [_legend([(s.name, s.css) for s in series] + ([("fault window", "win-swatch")] if shaded_windows else [])),
            _windows(shaded_windows, x, n, PAD_T, bottom), _axes(x, y, ticks, x_labels, y_format, bottom),
            _hlines([h for h in hlines if math.isfinite(h[1])], y)]
    for s in series:
        pts = [(x(i + 0.5), y(v)) if v is not None and math.isfinite(v) else None for i, v in enumerate(s.values)]
        body.append(f'<path class="line {s.css}" d="{path_d(pts)}"/>')
        if len(pts) > 120:  # an hourly month: the line alone (a dot per hour would be noise and weight)
            continue
        for i, (p, v) in enumerate(zip(pts, s.values, strict=True)):
            if p is not None and v is not None:
                label = x_labels[i] if i < len(x_labels) else str(i)
                body.append(f'<circle class="{s.css}" cx="{p[0]:.1f}" cy="{p[1]:.1f}" r="2.5">'
                            f"<title>{esc(label)} {esc(s.name)}: {esc(y_format(v))}</title></circle>")
    return _frame(chart_id, title, desc, height, "".join(body))


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: its value (None: nothing measured), a target mark (None: no target), pass/fail."""

    label: str
    value: float | None
    target: float | None
    met: bool


def svg_hbar_chart(bars: Sequence[Bar], *, chart_id: str, title: str, desc: str,
                   value_format: Callable[[float], str] = str, missing_text: str = "not detected") -> str:
    """Horizontal bars (one per row) with the target drawn as a vertical mark across each bar.

    >>> svg = svg_hbar_chart([Bar("a", 2.0, 4.0, True), Bar("b", None, 4.0, False)], chart_id="t",
    ...                      title="T", desc="D")
    >>> svg.count('class="target"'), "not detected" in svg
    (2, True)
    """
    row, left, top = 30, 170, 30
    bottom = top + row * max(len(bars), 1)
    height = bottom + PAD_B
    finite = [v for b in bars for v in (b.value, b.target) if v is not None and math.isfinite(v)]
    ticks = nice_ticks(0.0, max(finite, default=1.0))
    x = linear_scale(0, ticks[-1], left, WIDTH - PAD_R)
    body = [_legend([("target met", "bar-met"), ("target missed", "bar-miss"), ("target", "target-swatch")])]
    for t in ticks:
        body.append(f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{bottom}"/>'
                    f'<text class="ax" x="{x(t):.1f}" y="{bottom + 16}" text-anchor="middle">'
                    f"{esc(value_format(t))}</text>")
    for i, b in enumerate(bars):
        cy = top + row * i + row / 2
        body.append(f'<text class="ax" x="{left - 6}" y="{cy + 4:.1f}" text-anchor="end">{esc(b.label[:22])}</text>')
        if b.value is not None and math.isfinite(b.value):
            tip = f"{b.label}: {value_format(b.value)}" + (f" (target {value_format(b.target)})" if b.target else "")
            body.append(f'<rect class="{"bar-met" if b.met else "bar-miss"}" x="{left}" y="{cy - 8:.1f}" '
                        f'width="{max(x(b.value) - left, 1.5):.1f}" height="16"><title>{esc(tip)}</title></rect>'
                        f'<text class="ax" x="{x(max(b.value, b.target or 0)) + 6:.1f}" y="{cy + 4:.1f}">'
                        f"{esc(value_format(b.value))}</text>")
        else:
            body.append(f'<text class="ax miss" x="{left + 4}" y="{cy + 4:.1f}">{esc(missing_text)}</text>')
        if b.target is not None and math.isfinite(b.target):
            body.append(f'<line class="target" x1="{x(b.target):.1f}" x2="{x(b.target):.1f}" y1="{cy - 12:.1f}" '
                        f'y2="{cy + 12:.1f}"><title>target {esc(value_format(b.target))}</title></line>')
    return _frame(chart_id, title, desc, height, "".join(body))


def svg_stacked_bars(stacks: Sequence[dict[str, float]], colours: dict[str, str], shaded_windows: Sequence[Window],
                     *, chart_id: str, title: str, desc: str, x_labels: Sequence[str], height: int = 280) -> str:
    """Vertical stacked bars, one per x position; segments stack in the order of ``colours`` (name → #colour).

    >>> svg = svg_stacked_bars([{"m": 3, "e": 1}], {"m": "#00f", "e": "#f00"}, [], chart_id="s", title="T",
    ...                        desc="D", x_labels=["d1"])
    >>> svg.count("<rect") - 2  # two segments, beside the two legend swatches
    2
    """
    bottom = height - PAD_B
    ticks = nice_ticks(0.0, max((sum(s.values()) for s in stacks), default=1.0) or 1.0)
    n = max(len(stacks), 1)
    x = linear_scale(0, n, PAD_L, WIDTH - PAD_R)
    y = linear_scale(0, ticks[-1], bottom, PAD_T)
    width = max((x(1) - x(0)) * 0.72, 1.0)
    body = [_legend(list(colours.items())), _windows(shaded_windows, x, n, PAD_T, bottom),
            _axes(x, y, ticks, x_labels, lambda t: f"{t:,.0f}", bottom)]
    for i, stack in enumerate(stacks):
        level = 0.0
        for name, colour in colours.items():
            count = stack.get(name, 0)
            if count <= 0:
                continue
            label = x_labels[i] if i < len(x_labels) else str(i)
            body.append(f'<rect x="{x(i + 0.5) - width / 2:.1f}" y="{y(level + count):.1f}" width="{width:.1f}" '
                        f'height="{y(level) - y(level + count):.1f}" fill="{colour}">'
                        f"<title>{esc(label)} {esc(name)}: {count:,.0f}</title></rect>")
            level += count
    return _frame(chart_id, title, desc, height, "".join(body))


def svg_histograms(labels: Sequence[str], series: Sequence[Series], *, chart_id: str, title: str, desc: str,
                   y_format: Callable[[float], str] = lambda v: f"{v * 100:.0f}%", height: int = 280) -> str:
    """Grouped vertical bars: one group per bin (``labels``), one bar per series in it (reference, current).

    >>> svg = svg_histograms(["a", "b"], [Series("ref", "s-p0", [0.5, 0.5]), Series("cur", "s-p1", [0.9, None])],
    ...                      chart_id="h", title="T", desc="D")
    >>> svg.count('class="s-p0"'), svg.count('class="s-p1"')  # legend swatch + bars
    (3, 2)
    """
    bottom = height - PAD_B
    finite = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    ticks = nice_ticks(0.0, max(finite, default=1.0) or 1.0)
    n = max(len(labels), 1)
    x = linear_scale(0, n, PAD_L, WIDTH - PAD_R)
    y = linear_scale(0, ticks[-1], bottom, PAD_T)
    group = (x(1) - x(0)) * 0.8
    width = max(group / max(len(series), 1), 1.0)
    body = [_legend([(s.name, s.css) for s in series]), _axes(x, y, ticks, labels, y_format, bottom)]
    for k, s in enumerate(series):
        for i, v in enumerate(s.values):
            if v is None or not math.isfinite(v) or i >= len(labels):
                continue
            left = x(i + 0.5) - group / 2 + k * width
            body.append(f'<rect class="{s.css}" x="{left:.1f}" y="{y(v):.1f}" width="{width:.1f}" '
                        f'height="{max(y(0) - y(v), 0.0):.1f}"><title>{esc(labels[i])} {esc(s.name)}: '
                        f"{esc(y_format(v))}</title></rect>")
    return _frame(chart_id, title, desc, height, "".join(body))


@dataclass(frozen=True)
class DagNode:
    """One box of a graph: ``css`` colours it (its state), ``detail`` is its second line, ``tip`` its tooltip."""

    id: str
    label: str
    detail: str = ""
    css: str = "dag-pending"
    tip: str = ""


def dag_layers(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: 0 without a parent, else one below its deepest parent (a cycle is cut, not followed).

    >>> dag_layers(["a", "b", "c", "d"], [("a", "b"), ("b", "d"), ("a", "d"), ("c", "d")])
    {'a': 0, 'b': 1, 'c': 0, 'd': 2}
    """
    layer = dict.fromkeys(nodes, 0)
    for _ in range(len(nodes)):  # longest path by relaxation; n rounds at most, so a cycle cannot loop forever
        moved = False
        for a, b in edges:
            if a in layer and b in layer and layer[b] < layer[a] + 1 <= len(nodes):
                layer[b] = layer[a] + 1
                moved = True
        if not moved:
            break
    return layer


def svg_dag(nodes: Sequence[DagNode], edges: Sequence[tuple[str, str, str]], *, chart_id: str, title: str,
            desc: str) -> str:
    """A directed graph drawn top-down: layers of boxes (:func:`dag_layers`), arrows from each parent to its child.

    ``edges``: (from id, to id, label); the label is the arrow's tooltip (the input it carries).

    >>> svg = svg_dag([DagNode("a", "load"), DagNode("b", "train", "1.2 s", "dag-ok")], [("a", "b", "rows")],
    ...               chart_id="g", title="T", desc="D")
    >>> svg.count('class="dag-edge"'), "1.2 s" in svg
    (1, True)
    """
    box_w, box_h, gap_x, gap_y, top = 168, 44, 24, 40, 12
    layer = dag_layers([n.id for n in nodes], [(a, b) for a, b, _ in edges])
    rows: dict[int, list[DagNode]] = {}
    for n in nodes:
        rows.setdefault(layer[n.id], []).append(n)
    widest = max((len(r) for r in rows.values()), default=1)
    width = max(WIDTH, widest * (box_w + gap_x) + gap_x)
    height = top * 2 + len(rows) * box_h + max(len(rows) - 1, 0) * gap_y
    where: dict[str, tuple[float, float]] = {}
    for depth, row in rows.items():
        span = len(row) * box_w + (len(row) - 1) * gap_x
        for i, n in enumerate(row):
            where[n.id] = ((width - span) / 2 + i * (box_w + gap_x), top + depth * (box_h + gap_y))
    arrow = f"{chart_id}-arrow"
    body = [(f'<defs><marker id="{esc(arrow)}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" class="dag-head"/></marker>'
             "</defs>")]
    pairs: dict[tuple[str, str], list[str]] = {}  # one arrow per pair of steps, naming every input it carries
    for a, b, label in edges:
        if a in where and b in where and a != b:
            pairs.setdefault((a, b), []).append(label)
    # each box's arrows leave from (and arrive at) points spread along its edge, ordered by the other end's x
    outs = {n: sorted((b for a, b in pairs if a == n), key=lambda b: where[b][0]) for n in where}
    ins = {n: sorted((a for a, b in pairs if b == n), key=lambda a: where[a][0]) for n in where}

    def spread(k: int, n: int) -> float:
        return box_w / 2 if n == 1 else box_w * (0.2 + 0.6 * k / (n - 1))
    for (a, b), labels in pairs.items():
        (ax, ay), (bx, by) = where[a], where[b]
        x0 = ax + spread(outs[a].index(b), len(outs[a]))
        x1 = bx + spread(ins[b].index(a), len(ins[b]))
        y0, y1 = ay + box_h, by
        label = "; ".join(labels)
        mid = (y0 + y1) / 2
        body.append(f'<path class="dag-edge" d="M{x0:.1f} {y0:.1f}C{x0:.1f} {mid:.1f} {x1:.1f} {mid:.1f} {x1:.1f} '
                    f'{y1 - 1:.1f}" marker-end="url(#{esc(arrow)})"><title>{esc(label)}</title></path>')
    for n in nodes:
        nx, ny = where[n.id]
        body.append(f'<g class="dag-node"><title>{esc(n.tip or n.label)}</title><rect class="{esc(n.css)}" '
                    f'x="{nx:.1f}" y="{ny:.1f}" width="{box_w}" height="{box_h}" rx="6"/>'
                    f'<text x="{nx + 8:.1f}" y="{ny + 18:.1f}" class="dag-name">{esc(n.label[:24])}</text>'
                    f'<text x="{nx + 8:.1f}" y="{ny + 35:.1f}" class="ax">{esc(n.detail[:28])}</text></g>')
    return _frame(chart_id, title, desc, height, "".join(body), width=int(width))


#: The charts' stylesheet, shared by the demo report and the dashboard (both inline it: no external file).
#: ``s-p0`` … ``s-p7``: series coloured from :data:`PALETTE`, for charts whose series are not fixed.
CHART_CSS = (
    "svg{width:100%;min-width:420px;height:auto;display:block}"
    "svg text{font-size:12px;fill:var(--fg)}svg .ax{fill:var(--muted)}svg .grid{stroke:#edf0f4}"
    "svg .axis{stroke:#9aa5b4}svg .line{fill:none;stroke-width:2}"
    ".win rect,rect.win-swatch{fill:#f6ad55;fill-opacity:.22}.win text{font-size:10px;fill:#9c4221}"
    ".win line{stroke:#dd8a0e}.bar-met{fill:var(--ok)}.bar-miss{fill:var(--faulted)}"
    ".target,rect.target-swatch{stroke:#1a202c;stroke-width:3;fill:#1a202c}"
    ".hline line{stroke:#9c4221;stroke-dasharray:6 4;stroke-width:1.2}.hline text{font-size:10px;fill:#9c4221}"
    ".dag-node rect{stroke-width:1.5}.dag-ok{fill:#e6f4ea;stroke:var(--ok)}.dag-bad{fill:#fde8e8;"
    "stroke:var(--faulted)}.dag-cached{fill:#e8f0fb;stroke:#2b6cb0;stroke-dasharray:5 3}.dag-pending{fill:#f4f6f9;"
    "stroke:#9aa5b4}.dag-running{fill:#fdf3e1;stroke:var(--warn)}svg text.dag-name{font-weight:600}"
    ".dag-edge{fill:none;stroke:#6b7685;stroke-width:1.4}.dag-head{fill:#6b7685}"
    + "".join(f"path.s-p{i}{{stroke:{c}}}circle.s-p{i},rect.s-p{i}{{fill:{c}}}" for i, c in enumerate(PALETTE))
)


__all__ = ["CHART_CSS", "Bar", "DagNode", "Series", "Window", "dag_layers", "esc", "linear_scale", "nice_ticks",
           "path_d", "svg_dag", "svg_hbar_chart", "svg_histograms", "svg_line_chart", "svg_stacked_bars"]

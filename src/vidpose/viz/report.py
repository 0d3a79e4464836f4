"""One self-contained HTML report: figures embedded as base64 PNG, inline CSS, no scripts and
no network. Sections are plain data (:class:`Section`) so the evaluation decides the content
and this module only lays it out and escapes it.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vidpose._atomic import atomic_write_text

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       color: #1d2330; background: #f5f6f8; }
header { background: #1d2330; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header p { margin: 2px 0; color: #c9cfdb; font-size: 13px; }
main { padding: 8px 32px 40px 32px; max-width: 1400px; }
section { background: #fff; border-radius: 6px; padding: 14px 20px; margin: 18px 0;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 18px; margin: 4px 0 10px 0; border-bottom: 1px solid #e3e6ec;
     padding-bottom: 6px; }
h3 { font-size: 15px; margin: 16px 0 6px 0; }
p.note { color: #4b5568; font-size: 13px; margin: 4px 0 10px 0; max-width: 1000px; }
figure { margin: 10px 0 18px 0; }
figure img { max-width: 100%; border: 1px solid #e3e6ec; }
figcaption { font-size: 12.5px; color: #4b5568; max-width: 1000px; }
table { border-collapse: collapse; font-size: 12.5px; margin: 6px 0 12px 0; }
th, td { border: 1px solid #dde1e8; padding: 3px 8px; text-align: right; }
th { background: #eef0f4; }
td.text, th.text { text-align: left; }
.kpi { display: inline-block; margin: 4px 22px 8px 0; }
.kpi b { display: block; font-size: 20px; }
.kpi span { font-size: 12px; color: #4b5568; }
.warn { color: #a33b00; }
pre { background: #f3f4f7; padding: 10px; font-size: 12px; overflow-x: auto; }
nav a { color: #9ec5ff; margin-right: 14px; font-size: 13px; }
"""


@dataclass
class Figure:
    """A PNG figure with a caption telling the reader what to look for."""

    png: bytes
    caption: str
    alt: str = ""


@dataclass
class Section:
    """A report section; ``items`` are rendered in order."""

    title: str
    anchor: str
    notes: list[str] = field(default_factory=list)
    kpis: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    items: list[Figure | pd.DataFrame | str] = field(default_factory=list)
    preformatted: str | None = None


def _table(df: pd.DataFrame) -> str:
    head = "".join(
        f'<th class="{"text" if df[c].dtype == object else ""}">{html.escape(str(c))}</th>'
        for c in df.columns
    )
    rows = []
    for _, r in df.iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            if isinstance(v, float):
                cells.append(f"<td>{v:.2f}</td>" if pd.notna(v) else "<td>–</td>")
            else:
                cells.append(f'<td class="text">{html.escape(str(v))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    alt = html.escape(f.alt or f.caption[:80])
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
        f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
    )


def render_report(title: str, subtitle: list[str], sections: list[Section]) -> str:
    """The whole HTML document as a string."""
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(s)}</p>" for s in subtitle),
        f"<nav>{nav}</nav></header><main>",
    ]
    for s in sections:
        parts.append(f'<section id="{html.escape(s.anchor)}"><h2>{html.escape(s.title)}</h2>')
        if s.kpis:
            parts.append(
                "<div>"
                + "".join(
                    f'<div class="kpi"><b>{html.escape(v)}</b><span>{html.escape(lbl)}</span></div>'
                    for v, lbl in s.kpis
                )
                + "</div>"
            )
        parts += [f'<p class="note">{html.escape(n)}</p>' for n in s.notes]
        for item in s.items:
            if isinstance(item, Figure):
                parts.append(_figure(item))
            elif isinstance(item, pd.DataFrame):
                parts.append(_table(item))
            else:
                parts.append(f"<h3>{html.escape(item)}</h3>")
        if s.preformatted is not None:
            parts.append(f"<pre>{html.escape(s.preformatted)}</pre>")
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def write_report(
    path: str | Path, title: str, subtitle: list[str], sections: list[Section]
) -> Path:
    """Render and write the report atomically."""
    path = Path(path)
    atomic_write_text(path, render_report(title, subtitle, sections))
    return path

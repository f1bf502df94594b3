"""Render a report, a list of blocks, as markdown and as one self-contained HTML file.

The HTML carries its style inline and every image as a ``data:image/png;base64`` URI: it opens anywhere,
offline, as a single file.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from mscl.reports.tables import Table, to_markdown


@dataclass(frozen=True)
class Heading:
    """A section title (level 1 is the report's title)."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bulleted list of plain-text items."""

    items: list[str]


@dataclass(frozen=True)
class TableBlock:
    """A table with its title above and footer below."""

    table: Table


@dataclass(frozen=True)
class Image:
    """A PNG file in the report directory with a caption."""

    path: Path
    caption: str


Block = Heading | Paragraph | Bullets | TableBlock | Image

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
caption { font-weight: bold; text-align: left; padding-bottom: 0.3em; }
.footer { font-size: 0.8em; color: #555; max-width: 900px; }
figure { margin: 1em 0; } img { max-width: 100%; } figcaption { font-size: 0.85em; color: #444; }
"""


def to_markdown_document(blocks: list[Block]) -> str:
    """The report as markdown; images are linked by their file name (they sit next to report.md)."""
    parts: list[str] = []
    for block in blocks:
        match block:
            case Heading(text, level):
                parts.append(f"{'#' * level} {text}")
            case Paragraph(text):
                parts.append(text)
            case Bullets(items):
                parts.append("\n".join(f"- {item}" for item in items))
            case TableBlock(table):
                parts.append(f"**{table.title}**\n\n{to_markdown(table)}")
                if table.footer:
                    parts.append(f"*{table.footer}*")
            case Image(path, caption):
                parts.append(f"![{caption}]({path.name})\n\n*{caption}*")
    return "\n\n".join(parts) + "\n"


def to_html_document(blocks: list[Block], title: str) -> str:
    """The report as one HTML page with inline CSS and images embedded as base64 data URIs."""
    body = "\n".join(_html_block(block) for block in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _html_block(block: Block) -> str:
    esc = html.escape
    match block:
        case Heading(text, level):
            return f"<h{level}>{esc(text)}</h{level}>"
        case Paragraph(text):
            return f"<p>{esc(text)}</p>"
        case Bullets(items):
            return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>"
        case TableBlock(table):
            return _html_table(table)
        case Image(path, caption):
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            return (
                f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
    raise TypeError(f"not a report block: {block!r}")


def _html_table(table: Table) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(table.text(c))}</td>" for c in row) + "</tr>" for row in table.rows
    )
    footer = f'<p class="footer">{esc(table.footer)}</p>' if table.footer else ""
    return f"<table><caption>{esc(table.title)}</caption><tr>{head}</tr>{rows}</table>{footer}"

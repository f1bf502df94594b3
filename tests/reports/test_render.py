"""Markdown and self-contained HTML rendering."""

from __future__ import annotations

import base64
import re

from matplotlib.figure import Figure

from mscl.reports.render import (
    Bullets,
    Heading,
    Image,
    Paragraph,
    TableBlock,
    to_html_document,
    to_markdown_document,
)
from mscl.reports.stats import Stat
from mscl.reports.tables import Table

TABLE = Table("t", "BWT <table>", ["center", "replay"], [["BWH", Stat.of([0.1, 0.2])]], footer="a & b")


def blocks(tmp_path):
    png = tmp_path / "fig.png"
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    fig.savefig(png, dpi=20)
    return [
        Heading("Report", 1),
        Paragraph("see <this>"),
        Bullets(["one"]),
        TableBlock(TABLE),
        Image(png, "cap"),
    ], png


def test_markdown_links_images_by_name(tmp_path) -> None:
    doc, _ = blocks(tmp_path)
    text = to_markdown_document(doc)
    assert text.startswith("# Report\n")
    assert "- one" in text and "**BWT <table>**" in text and "| BWH | 0.150 ± 0.071 |" in text
    assert "![cap](fig.png)" in text


def test_html_is_self_contained_with_data_uri_images(tmp_path) -> None:
    doc, png = blocks(tmp_path)
    page = to_html_document(doc, "t")
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", page)
    assert "http://" not in page and "https://" not in page
    (uri,) = re.findall(r'<img src="([^"]+)"', page)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == png.read_bytes()
    assert "see &lt;this&gt;" in page and "BWT &lt;table&gt;" in page and "a &amp; b" in page

"""Self-contained HTML markup: tables, embedded PNG images and the page around them.

The page needs nothing outside itself: the style sheet and the table-sorting script are inline, images are
``data:image/png;base64`` URIs, and no font, script or style is fetched, so the file opens offline and can be
mailed as one attachment.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
figure.case { display: inline-block; vertical-align: top; width: 49%; margin: 0.5em 0; }
table.facts td { text-align: left; } table.facts td:first-child { background: #f0f0f0; }
img { max-width: 100%; height: auto; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
.note { color: #8a5a00; font-size: 0.9em; }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header) {
    header.addEventListener("click", function () {
      var column = header.cellIndex;
      var ascending = header.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].getAttribute("data-sort"), y = b.cells[column].getAttribute("data-sort");
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var nx = Number(x), ny = Number(y), order;
        if (!isNaN(nx) && !isNaN(ny)) { order = nx - ny; } else { order = x < y ? -1 : (x > y ? 1 : 0); }
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""
"""Sorts a ``table.sortable`` by the clicked column's ``data-sort`` values (numbers numerically, text otherwise;
empty cells last); a second click reverses the order. Rows keep their order among equal values (stable sort)."""


@dataclass(frozen=True)
class Cell:
    """A table cell: the text shown and the value sorted on (``None``: sorted last)."""

    text: str
    sort: str | float | None = None


def format_number(value: float, digits: int = 3) -> str:
    """``0.904``; ``n/a`` for nan / inf."""
    return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"


def number_cell(value: float, digits: int = 3) -> Cell:
    """A numeric cell shown with ``digits`` decimals and sorted by its full value (non-finite: last)."""
    return Cell(format_number(value, digits), value if math.isfinite(value) else None)


def table_html(
    headers: Sequence[str] | None,
    rows: Sequence[Sequence[Cell | str]],
    *,
    sortable: bool = False,
    table_id: str = "",
    css_class: str = "",
) -> str:
    """An HTML table (no header row when ``headers`` is ``None``); with ``sortable`` a click on a header sorts
    by that column (:data:`SORT_SCRIPT`)."""
    classes = " ".join(name for name in ("sortable" if sortable else "", css_class) if name)
    attributes = (f' class="{classes}"' if classes else "") + (f' id="{html.escape(table_id)}"' if table_id else "")
    lines = [f"<table{attributes}>"]
    if headers is not None:
        lines += ["<thead><tr>", *(f"<th>{html.escape(header)}</th>" for header in headers), "</tr></thead>"]
    lines.append("<tbody>")
    for row in rows:
        cells = []
        for item in row:
            cell = item if isinstance(item, Cell) else Cell(str(item), str(item))
            sort = "" if cell.sort is None else (repr(cell.sort) if isinstance(cell.sort, float) else cell.sort)
            cells.append(f'<td data-sort="{html.escape(str(sort))}">{html.escape(cell.text)}</td>')
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_html(png: bytes, caption: str, *, alt: str, css_class: str = "") -> str:
    """A ``<figure>`` with the PNG embedded as a data URI and a caption."""
    attribute = f' class="{css_class}"' if css_class else ""
    return (
        f'<figure{attribute}><img src="{png_data_uri(png)}" alt="{html.escape(alt)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def paragraph(text: str, *, css_class: str = "") -> str:
    """An escaped ``<p>``."""
    attribute = f' class="{css_class}"' if css_class else ""
    return f"<p{attribute}>{html.escape(text)}</p>"


def heading(text: str, level: int = 3) -> str:
    """An escaped ``<h1>`` .. ``<h6>``."""
    return f"<h{level}>{html.escape(text)}</h{level}>"


def preformatted(text: str) -> str:
    """An escaped ``<pre>`` block."""
    return f"<pre>{html.escape(text)}</pre>"


def document(title: str, sections: Sequence[tuple[str, str]], *, subtitle: str = "") -> str:
    """The whole page: ``sections`` are ``(heading, inner HTML)`` pairs, in order."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if subtitle:
        parts.append(paragraph(subtitle))
    for heading, body in sections:
        parts.append(f"<section><h2>{html.escape(heading)}</h2>\n{body}\n</section>")
    parts.append(f"<script>{SORT_SCRIPT}</script>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

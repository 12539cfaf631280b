"""The run report: one self-contained HTML file (report.html) showing what a run did and why.

`write_report(run_dir)` renders every section whose data exist in the run directory (metrics.json,
history.csv, layers.csv, lr_find.json, tuning.json + trials.csv, findings.json, compare.json; see
docs/report.md for each file's format) into `RUN_DIR/report.html`, in the order `page.py` lists them.
The report shows what the run wrote: it recomputes no number its producers already wrote. Plots are inline SVG data URIs
and the styles are inline, so the file opens from disk with no network; it prints cleanly (print
CSS). `fit()` calls it at the end; `tunesmith report RUN_DIR` rewrites it.

A section that fails (e.g. a malformed findings.json) shows its error in place; the others render.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import jinja2
from markupsafe import Markup

from tunesmith.errors import BadInput
from tunesmith.report.files import RunFiles
from tunesmith.report.html import note
from tunesmith.report.page import SECTIONS, Section, get_sections, register_section

__all__ = ["SECTIONS", "RunFiles", "Section", "register_section", "render_report", "write_report"]

log = logging.getLogger("tunesmith")
_PAGE = jinja2.Environment(loader=jinja2.PackageLoader("tunesmith.report"), autoescape=True).get_template(
    "report.html.j2"
)


def render_report(run_dir: str | Path, *, sections: Sequence[str] | None = None) -> str:
    """The report page of a run directory as an HTML string (`sections`: names to keep, default all)."""
    run = RunFiles(Path(run_dir))
    if not run.path.is_dir():
        raise BadInput(f"{run.path} is not a directory. Pass the run directory that fit, tune or doctor wrote.")
    blocks = [block for section in get_sections(sections) if (block := _render(section, run)) is not None]
    if not blocks:
        raise BadInput(
            f"{run.path} holds none of the files a report shows (metrics.json, history.csv, lr_find.json, "
            "tuning.json, findings.json, compare.json). Pass a run directory written by tunesmith."
        )
    from tunesmith import __version__

    return _PAGE.render(
        name=run.path.resolve().name,
        path=str(run.path),
        sections=blocks,
        version=__version__,
        when=f"{datetime.now():%Y-%m-%d %H:%M}",
    )


def write_report(run_dir: str | Path, *, sections: Sequence[str] | None = None) -> Path:
    """Render and (over)write RUN_DIR/report.html atomically; returns its path."""
    html = render_report(run_dir, sections=sections)
    path = Path(run_dir) / "report.html"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _render(section: Section, run: RunFiles) -> dict[str, object] | None:
    try:
        if not section.applies(run):
            return None
        body = section.render(run)
    except BadInput as exc:
        body = note(str(exc), css="error")
    except Exception as exc:  # a bug in one section must not cost the user the whole report
        log.warning("report section %r failed", section.name, exc_info=True)
        body = note(f"This section could not be rendered: {type(exc).__name__}: {exc}", css="error")
    return {"name": section.name, "title": section.title, "body": Markup(body)}

"""Post-processing of the rendered notebook pages into one navigable, offline, printable report.

nbconvert renders each executed notebook to a page of its own. This module
turns those pages into one report (issue: publication report):

- a real ``<title>`` from the run's years ("Estimated victims 2016-2019: results");
- a navigation bar linking the four pages and the run's index;
- a table of contents of each page's sections (its ``h2``/``h3`` headings);
- a visible banner on every page of an exploratory run (m, B or maxit below
  the study's values);
- no script fetched from the internet (nbconvert's template loads require.js,
  MathJax and mermaid from a CDN; the report needs none of them);
- print rules: tables and figures are not split across pages, headings stay
  with what follows, wide tables wrap.

Pure string functions: :func:`publish_page` takes the HTML text and a
:class:`PageContext` and returns the new HTML text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

#: The study's values of the parameters that make a run publishable (method: 25
#: completed data sets, 100 bootstrap replicates, 10 imputation iterations).
STUDY_VALUES: dict[str, int] = {"m": 25, "bootstrap": 100, "maxit": 10}

#: What each page is about, by notebook name (the page's title after "Estimated victims YYYY-YYYY: ").
PAGE_TITLES: dict[str, str] = {
    "01_data_preparation": "data preparation",
    "02_imputation": "imputation",
    "03_model_selection": "model selection",
    "04_results": "results",
}

#: The page a reader should open first.
RESULTS_PAGE = "04_results"

#: Cells with this tag are left out of the publication pages (``html/``); they
#: stay in the review pages (``html_code/``).
REMOVE_TAG = "remove-from-publication"

CSS = """
/* mse report: layout */
body.jp-Notebook { max-width: 1180px; margin: 0 auto; padding: 0 1.2rem 3rem; }
.mse-nav { position: sticky; top: 0; z-index: 10; background: #f6f8fa; border-bottom: 1px solid #d0d7de;
  padding: .45rem .8rem; font: 14px/1.4 system-ui, sans-serif; margin: 0 -1.2rem .6rem; }
.mse-nav a { margin-right: 1.1rem; color: #0550ae; text-decoration: none; }
.mse-nav a.current { font-weight: 600; color: #1f2328; }
.mse-nav .mse-run { float: right; color: #57606a; }
.mse-banner { background: #fff3cd; border: 2px solid #9a6700; color: #6b4700; padding: .5rem .8rem;
  font: 600 15px/1.4 system-ui, sans-serif; margin: .4rem 0 .8rem; }
.mse-toc { font: 13px/1.6 system-ui, sans-serif; color: #333; border-left: 3px solid #d0d7de;
  padding: .2rem .8rem; margin: .4rem 0 .8rem; }
.mse-toc > strong { margin-right: .5em; }
.mse-toc ol { list-style: none; display: inline; padding: 0; margin: 0; }
.mse-toc li { display: inline; }
.mse-toc > ol > li + li::before { content: " · "; color: #888; }
.mse-toc ol ol { font-size: 12px; } .mse-toc ol ol::before { content: " ("; } .mse-toc ol ol::after { content: ")"; }
.mse-toc ol ol li + li::before { content: ", "; }
.mse-guide { font: 13px/1.45 system-ui, sans-serif; background: #f6f8fa; padding: .5rem .9rem; margin: .4rem 0 .8rem; }
.mse-guide dl { columns: 2; column-gap: 2rem; margin: .2rem 0; }
.mse-guide dt { font-weight: 600; display: inline; } .mse-guide dd { display: inline; margin: 0; }
.mse-guide dd::after { content: ""; display: block; margin-bottom: .25rem; }
/* results page: the headline beside Figure 4, so both are on the first screen */
.celltag_mse-headline { float: left; width: 38%; margin-right: 1.5rem; }
.celltag_mse-beside { margin-left: calc(38% + 1.5rem); }
.jp-Cell:not(.celltag_mse-headline):not(.celltag_mse-beside) { clear: both; }
.mse-side { display: flex; gap: 1.5rem; align-items: flex-start; flex-wrap: wrap; }
.mse-side > * { flex: 1 1 360px; min-width: 0; }
.mse-side img { max-width: 100%; height: auto; }
table.pub { border-collapse: collapse; font-size: 13px; margin: .3rem 0 1rem; }
table.pub caption { caption-side: top; text-align: left; font-weight: 600; padding: .2rem 0; }
table.pub th, table.pub td { padding: .2rem .6rem; border-bottom: 1px solid #d8dee4;
  white-space: normal; max-width: 38rem; vertical-align: top; }
table.pub thead th { border-bottom: 2px solid #57606a; text-align: left; }
/* beats the notebook CSS (:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td: right) for text; numbers are right-aligned by the Styler */
.jp-RenderedHTMLCommon table.pub td, .jp-RenderedHTMLCommon table.pub th { text-align: left; }
details.mse-annex { margin: .4rem 0 1rem; }
details.mse-annex > summary { cursor: pointer; font-weight: 600; color: #0550ae; }
.jp-RenderedImage img { max-width: 100%; height: auto; }

/* mse report: print */
@media print {
  .mse-nav { position: static; }
  .mse-nav a { display: none; }
  .celltag_mse-headline { float: none; width: auto; } .celltag_mse-beside { margin-left: 0; }
  body.jp-Notebook { max-width: none; padding: 0; }
  table, figure, img, .jp-RenderedImage, .mse-side { break-inside: avoid; page-break-inside: avoid; }
  h1, h2, h3, h4, caption { break-after: avoid; page-break-after: avoid; }
  h2, h3 { break-inside: avoid; }
  table.pub, .jp-RenderedHTMLCommon table { width: auto; max-width: 100%; table-layout: auto; }
  table.pub th, table.pub td, .jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th {
    white-space: normal !important; overflow-wrap: break-word; font-size: 9px; padding: .1rem .3rem; }
  .jp-OutputArea-output, .jp-RenderedHTMLCommon { max-width: 100%; }
  .jp-OutputArea-output { overflow: visible !important; }
  a.anchor-link { display: none; }
}
@page { margin: 16mm 12mm; }
"""


@dataclass(frozen=True)
class PageContext:
    """What a page needs to know about its run to be turned into a report page.

    Attributes
    ----------
    notebook : str
        This page's notebook name (``04_results``).
    pages : tuple of str
        All pages of the report, in reading order (notebook names).
    years : tuple of int
        The analysed years (empty: unknown).
    parameters : mapping
        The run's parameters (``params.yaml``); ``m``, ``bootstrap`` and
        ``maxit`` decide whether the run is exploratory.
    run_name : str
        The run folder's name (``2026-12-03``), shown in the navigation bar.
    index_href : str
        Link to the run's index page, relative to this page.
    """

    notebook: str
    pages: tuple[str, ...] = tuple(PAGE_TITLES)
    years: tuple[int, ...] = ()
    parameters: Mapping = field(default_factory=dict)
    run_name: str = ""
    index_href: str = "../index.html"

    @property
    def years_text(self) -> str:
        """``2016-2019`` for consecutive years, ``2016, 2018`` otherwise, ``""`` if unknown."""
        return years_text(self.years)

    @property
    def title(self) -> str:
        """The page's ``<title>``: ``Estimated victims 2016-2019: results``."""
        return page_title(self.notebook, self.years)

    @property
    def banner(self) -> str | None:
        """The exploratory-run banner text, or None for a run with the study's settings."""
        return exploratory_banner(self.parameters)


def years_text(years: Sequence[int]) -> str:
    """``[2016, 2017, 2018, 2019]`` -> ``"2016-2019"``; ``[2016, 2018]`` -> ``"2016, 2018"``."""
    ys = sorted({int(y) for y in years})
    if not ys:
        return ""
    if len(ys) > 1 and ys == list(range(ys[0], ys[-1] + 1)):
        return f"{ys[0]}-{ys[-1]}"
    return ", ".join(map(str, ys))


def page_title(notebook: str, years: Sequence[int] = ()) -> str:
    """``Estimated victims 2016-2019: results`` (without years when they are unknown)."""
    topic = PAGE_TITLES.get(notebook, notebook.split("_", 1)[-1].replace("_", " "))
    span = years_text(years)
    return f"Estimated victims {span}: {topic}" if span else f"Estimated victims: {topic}"


def exploratory_banner(parameters: Mapping) -> str | None:
    """``"exploratory run (m=3, B=20): not for publication"`` when m, B or maxit is below the study's value.

    Parameters
    ----------
    parameters : mapping
        With ``m``, ``bootstrap`` and ``maxit`` (missing ones count as the study's value).

    Returns
    -------
    str or None
        None when every value is at least the study's.
    """
    values = {k: parameters.get(k, v) for k, v in STUDY_VALUES.items()}
    below = [k for k, v in values.items() if v is not None and int(v) < STUDY_VALUES[k]]
    if not below:
        return None
    parts = [f"m={values['m']}", f"B={values['bootstrap']}"]
    if "maxit" in below:
        parts.append(f"maxit={values['maxit']}")
    return f"exploratory run ({', '.join(parts)}): not for publication"


# --- the transformations ---------------------------------------------------------------

_EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*</script>\s*", re.I)
_INLINE_SCRIPT = re.compile(r"<script\b[^>]*>(.*?)</script>\s*", re.I | re.S)
_EXTERNAL_LINK = re.compile(r"<link[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*", re.I)


def strip_external(page: str) -> str:
    """Remove every script and stylesheet fetched from the internet, and the scripts that load them.

    nbconvert's template adds require.js and MathJax (``<script src=https://...>``)
    and a mermaid module that imports from a CDN; the report uses no maths,
    widgets or diagrams, so they are dropped rather than bundled.
    """
    page = _EXTERNAL_SCRIPT.sub("", page)
    page = _EXTERNAL_LINK.sub("", page)

    def inline(m: re.Match) -> str:
        body = m.group(1)
        return "" if ("cdnjs" in body or "MathJax" in body or re.search(r"https?://\S+\.m?js", body)) else m.group(0)

    return _INLINE_SCRIPT.sub(inline, page)


_HEADING = re.compile(r"<h([23])\s+id=\"([^\"]+)\"[^>]*>(.*?)</h\1>", re.S)


def _text(fragment: str) -> str:
    fragment = re.sub(r"<a class=\"anchor-link\".*?</a>", "", fragment, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def headings(page: str) -> list[tuple[int, str, str]]:
    """The page's section headings: ``(level, id, text)`` for every ``h2`` and ``h3`` with an id."""
    return [(int(level), hid, _text(inner)) for level, hid, inner in _HEADING.findall(page)]


def toc_html(items: Sequence[tuple[int, str, str]]) -> str:
    """A table of contents (nested ordered list) from :func:`headings`; ``""`` when there are none."""
    if not items:
        return ""
    # class list-inline: JupyterLab's page style indents every other list by 2em (a gap mid-line here)
    ol = '<ol class="list-inline">'
    out = [f'<nav class="mse-toc" aria-label="contents"><strong>Contents</strong>{ol}']
    open_sub = False
    for level, hid, text in items:
        # "Figure 4: observed and ..." -> "Figure 4" in the contents (the full title on hover)
        short = re.match(r"(Tables? [\d-]+|Figure \d+|Annex [A-Z])\b", text) if level == 3 else None
        shown = short.group(1) if short else text
        link = (
            f'<a href="#{html.escape(hid, quote=True)}" title="{html.escape(text, quote=True)}">'
            f"{html.escape(shown)}</a>"
        )
        if level == 2:
            if open_sub:
                out.append("</ol></li>")
                open_sub = False
            elif len(out) > 1:
                out.append("</li>")
            out.append(f"<li>{link}")
        else:
            if not open_sub:
                if len(out) == 1:
                    out.append("<li>")
                out.append(ol)
                open_sub = True
            out.append(f"<li>{link}</li>")
    out.append("</ol></li>" if open_sub else "</li>")
    out.append("</ol></nav>")
    return "".join(out)


def nav_html(ctx: PageContext) -> str:
    """The navigation bar: the report's pages (this one marked) and the run's index."""
    links = []
    for k, nb in enumerate(ctx.pages, 1):
        label = f"{k} {PAGE_TITLES.get(nb, nb)}"
        cls = ' class="current" aria-current="page"' if nb == ctx.notebook else ""
        links.append(f'<a href="{html.escape(nb)}.html"{cls}>{html.escape(label)}</a>')
    links.append(f'<a href="{html.escape(ctx.index_href)}">run index</a>')
    run = f'<span class="mse-run">run {html.escape(ctx.run_name)}</span>' if ctx.run_name else ""
    return f'<nav class="mse-nav" aria-label="report pages">{run}{"".join(links)}</nav>'


def banner_html(ctx: PageContext) -> str:
    """The exploratory-run banner, or ``""``."""
    text = ctx.banner
    return f'<div class="mse-banner" role="note">{html.escape(text)}</div>' if text else ""


def publish_page(page: str, ctx: PageContext) -> str:
    """Turn one nbconvert page into a page of the report.

    Parameters
    ----------
    page : str
        The HTML nbconvert wrote.
    ctx : PageContext

    Returns
    -------
    str
        The page with title, navigation bar, banner, table of contents, the
        report's CSS (screen and print) and no external script.
    """
    page = strip_external(page)
    title = html.escape(ctx.title)
    if re.search(r"<title>.*?</title>", page, flags=re.S):
        page = re.sub(r"<title>.*?</title>", f"<title>{title}</title>", page, count=1, flags=re.S)
    else:
        page = page.replace("<head>", f"<head><title>{title}</title>", 1)
    page = page.replace("</head>", f"<style>{CSS}</style>\n</head>", 1)
    top = nav_html(ctx) + banner_html(ctx)
    page = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + top, page, count=1)
    toc = toc_html(headings(page))
    if toc:
        # after the page's h1 (the first markdown cell), else at the top of the main content
        page, n = re.subn(r"(<h1[^>]*>.*?</h1>)", lambda m: m.group(1) + toc, page, count=1, flags=re.S)
        if not n:
            page = re.sub(r"(<main[^>]*>)", lambda m: m.group(1) + toc, page, count=1)
    return page


def print_version(pages: Sequence[str]) -> str:
    """One HTML document with every page's content, for printing to one PDF.

    The head (styles) of the first page is kept; the content of every page
    follows, each starting on a new sheet; collapsed ``<details>`` are opened
    (a printed annex must show its tables); navigation bars are dropped.
    """
    if not pages:
        raise ValueError("print version: no pages")
    head = re.search(r"^(.*?<body[^>]*>)", pages[0], flags=re.S).group(1)
    bodies = []
    for k, page in enumerate(pages):
        m = re.search(r"<body[^>]*>(.*)</body>", page, flags=re.S)
        body = m.group(1) if m else page
        body = re.sub(r"<nav class=\"mse-nav\".*?</nav>", "", body, flags=re.S)
        if k:
            body = re.sub(r"<div class=\"mse-banner\".*?</div>", "", body, count=1, flags=re.S)
        body = re.sub(r"<details(\s[^>]*)?>", lambda m: f"<details{m.group(1) or ''} open>", body)
        style = ' style="break-before: page"' if k else ""
        bodies.append(f'<section class="mse-page"{style}>{body}</section>')
    return head + "".join(bodies) + "</body></html>\n"

"""The published report of a quick end-to-end run, read as a user (and a browser) would read it.

One quick run per session (module-scoped fixture: m=2, B=10, maxit=2) feeds
every test here; the pure-function tests at the end need no run.
"""

import csv
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from mse_helpers.cli import main
from mse_helpers.report import browser, export, tables
from mse_helpers.report import format as fmt
from mse_helpers.report import html as report_html
from mse_helpers.runner.params import PROJECT_ROOT

NOTEBOOKS = ("01_data_preparation", "02_imputation", "03_model_selection", "04_results")
QUICK = ["--set", "m=2", "--set", "bootstrap=10", "--set", "maxit=2"]
FORBIDDEN = (
    "/tmp",
    "/home",
    "/work",
    "mse_helpers",
    "Traceback",
    "NaN",
    "['",
    "[&#x27;",
    "mle_does_not_exist",
    "method.md",
)


class _Links(HTMLParser):
    """Collects titles, href/src attributes of a page."""

    def __init__(self):
        super().__init__()
        self.title, self._in_title = "", False
        self.links, self.scripts, self.styles, self.ids = [], [], [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "title":
            self._in_title = True
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        if tag in ("img", "iframe") and a.get("src"):
            self.scripts.append(a["src"])
        if tag == "link" and a.get("href"):
            self.styles.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


COUNT_HEADERS = {
    "registered",
    "estimated",
    "95% interval",
    "lower 95%",
    "upper 95%",
    "records",
    "persons",
    "n persons",
    "n partial",
    "n observed",
    "n imputed",
    "data sets",
    "true number",
    "registered (true)",
    "replicates ok",
    "replicates failed",
    "two-factor",
    "three-factor",
}


class _Tables(HTMLParser):
    """Every table of a page as (header texts, rows of cell texts)."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell, self._row = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(([], []))
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = [tag, ""]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append((self._cell[0], self._cell[1].strip()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            headers, rows = self.tables[-1]
            if all(k == "th" for k, _ in self._row) and not headers:
                headers.extend(t for _, t in self._row)
            else:
                rows.append([t for _, t in self._row])
            self._row = None


def _tables(text: str) -> list:
    parser = _Tables()
    parser.feed(text)
    return parser.tables


def _visible(text: str) -> str:
    """The page without embedded images (base64 can contain any letters)."""
    return re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=\s]+", "", text)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    reports = tmp_path_factory.mktemp("reports")
    assert main(["run", "--reports", str(reports)] + QUICK) == 0
    (run_dir,) = [d for d in reports.iterdir() if d.is_dir()]
    return run_dir


def _pages(run_dir):
    return {nb: (run_dir / "html" / f"{nb}.html").read_text(encoding="utf-8") for nb in NOTEBOOKS}


@pytest.mark.slow
def test_every_page_has_its_title_navigation_and_contents(run):
    for nb, text in _pages(run).items():
        parser = _Links()
        parser.feed(text)
        assert parser.title == f"Estimated victims 2016-2019: {report_html.PAGE_TITLES[nb]}"
        assert 'class="mse-nav"' in text and 'class="mse-toc"' in text
        for href in parser.links:
            if href.startswith("#"):
                assert href[1:] in parser.ids, f"{nb}: contents link {href} has no target"
                continue
            assert not href.startswith(("http:", "https:", "//")), f"{nb}: external link {href}"
            target = (run / "html" / href.split("#")[0]).resolve()
            assert target.is_file(), f"{nb}: link {href} does not resolve"
        # the nav bar reaches every page and the run's index
        assert {f"{n}.html" for n in NOTEBOOKS} | {"../index.html"} <= set(parser.links)


@pytest.mark.slow
def test_publication_pages_are_offline_and_hold_no_developer_output(run):
    for nb, text in _pages(run).items():
        parser = _Links()
        parser.feed(text)
        for src in parser.scripts + parser.styles:
            assert "http" not in src and not src.startswith("//"), f"{nb}: loads {src[:80]}"
        shown = _visible(text)
        for word in FORBIDDEN:
            assert word not in shown, f"{nb}: contains {word!r}"
        # counts never with a trailing .0: every cell under a count header is a whole number
        grids = _tables(shown)
        assert grids, f"{nb}: no table"
        for headers, rows in grids:
            for j, h in enumerate(headers):
                if h in COUNT_HEADERS or h.startswith(("registered", "estimated", "persons")):
                    bad = [
                        r[j]
                        for r in rows
                        if j < len(r) and r[j] not in ("", "–") and not re.fullmatch(r"[\d,]+(–[\d,]+)?", r[j])
                    ]
                    assert not bad, f"{nb}: column {h!r} is not whole numbers: {bad[:5]}"
        years = [
            r[j]
            for headers, rows in grids
            for j, h in enumerate(headers)
            if h == "year"
            for r in rows
            if j < len(r) and re.fullmatch(r"\d,\d{3}|\d{4}\.0+", r[j])
        ]
        assert not years, f"{nb}: years printed as counts {years[:3]}"
        # no pandas 0..N index column: no header row that starts with an empty cell over 0, 1, 2 ...
        assert not re.search(r'<th[^>]*class="row_heading[^"]*"[^>]*>\s*0\s*</th>', shown)
    # timing lines of the model selection stay in the review version only
    assert re.search(r"\d+\.\d s \(", (run / "html_code" / "03_model_selection.html").read_text())
    assert not re.search(r"\d+\.\d s \(", _pages(run)["03_model_selection"])


@pytest.mark.slow
def test_exploratory_run_is_marked_on_every_page_and_the_index(run):
    banner = "exploratory run (m=2, B=10, maxit=2): not for publication"
    for nb, text in _pages(run).items():
        assert banner in text, nb
    index = (run / "index.html").read_text()
    assert banner in index and "m=2, B=10" in index
    assert "m=2, B=10" in (run.parent / "index.html").read_text()
    for f in ("estimates.csv", "tables.xlsx", "sensitivity.csv"):
        assert f'href="results/{f}"' in index


@pytest.mark.slow
def test_results_page_opens_with_the_headline_and_figure_4_and_ends_with_the_annexes(run):
    text = _visible(_pages(run)["04_results"])
    body = text[text.index("<h1") :]  # after the styles and the contents at the top
    at = 0
    for part in (
        "How to read this report",
        "Figure 4: observed",
        "All years together",
        "<img",
        "Table 6: observed",
        "Table 7: by sex",
        "Figure 5",
        "Caveats",
        "Parameters",
        "Annexes",
        "Annex G",
        "Annex F",
        "Bootstrap diagnostics",
    ):
        found = body.find(part, at)
        assert found >= 0, f"{part!r} missing or out of order"
        at = found
    # the headline and Figure 4 come before any other table or figure
    assert body.index("<img") < body.index("<table")
    assert text.count("<details") >= 2  # Annex G and Annex F collapsed


@pytest.mark.slow
def test_take_away_files_hold_counts_only(run):
    from openpyxl import load_workbook

    wb = load_workbook(run / "results" / "tables.xlsx")
    assert wb.sheetnames[:5] == ["Table 6", "Table 7", "Table 8", "Table 9", "Table 10"]
    assert [s for s in wb.sheetnames if s.startswith("Annex G")] == [f"Annex G {k}" for k in range(1, 7)]
    t6 = list(wb["Table 6"].iter_rows(min_row=4, values_only=True))
    assert t6[0] == (
        "year", "registered", "estimated", "lower 95%", "upper 95%", "ratio",
        "not registered", "dark lower 95%", "dark upper 95%",
    )  # fmt: skip
    est = tables.check_estimates(pd.read_csv(run / "results" / "estimates.csv"))
    total_2016 = est[(est["year"] == "2016") & (est["group"] == "total")].iloc[0]
    assert t6[1][0] == "2016" and t6[1][2] == tables.publication_round(total_2016["n_hat"])
    assert t6[1][6] == tables.publication_round(total_2016["dark"])  # the dark number, rounded by the same rule
    assert t6[1][7] >= 0
    sens = pd.read_csv(run / "results" / "sensitivity.csv")
    assert tuple(sens.columns) == export.SENSITIVITY_COLUMNS
    assert {"main", "drop:K", "no-covariates"} <= set(sens["analysis"])
    # privacy: no person key or report id in the new files (cell values, not zipped bytes)
    keys = set()
    with open(PROJECT_ROOT / "data" / "reports.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            keys.update((row["person_key"], row["report_id"]))
    values = {str(v) for ws in wb for r in ws.iter_rows(values_only=True) for v in r if v is not None}
    values |= set(sens.astype(str).to_numpy().ravel())
    assert not (values & keys)
    assert len(sens) < 100  # a summary, not one row per person


@pytest.mark.slow
def test_screenshots_and_pdf_with_chromium(run, tmp_path):
    if browser.find_chromium() is None:
        pytest.skip(browser.INSTALL_HINT)
    png, height = browser.screenshot(run / "html" / "04_results.html", tmp_path / "top.png")
    assert png.stat().st_size > 10_000 and height == 900
    pdf = browser.write_pdf(run)
    assert pdf == run / "report.pdf" and pdf.read_bytes()[:5] == b"%PDF-"


# --- pure functions: no run needed ------------------------------------------------------


def test_banner_only_below_the_study_values():
    assert report_html.exploratory_banner({"m": 25, "bootstrap": 100, "maxit": 10}) is None
    assert (
        report_html.exploratory_banner({"m": 3, "bootstrap": 20, "maxit": 10})
        == "exploratory run (m=3, B=20): not for publication"
    )
    assert "maxit=5" in report_html.exploratory_banner({"m": 25, "bootstrap": 100, "maxit": 5})


def test_strip_external_removes_cdn_scripts_and_keeps_inline_ones():
    page = (
        '<head><script src="https://cdnjs.cloudflare.com/require.min.js"></script>'
        '<script type="text/x-mathjax-config">MathJax.Hub.Config({})</script>'
        '<script>var keep = 1;</script><link rel="stylesheet" href="https://fonts.x/css"></head>'
    )
    out = report_html.strip_external(page)
    assert "http" not in out and "var keep = 1;" in out


def test_toc_lists_sections_in_order_and_title_uses_years():
    page = '<h1 id="R">R</h1><h2 id="A">A</h2><h3 id="F4">Figure 4: observed</h3><h2 id="B">B &amp; C</h2>'
    toc = report_html.toc_html(report_html.headings(page))
    assert toc.index('href="#A"') < toc.index('href="#F4"') < toc.index('href="#B"')
    assert ">Figure 4</a>" in toc and "B &amp; C" in toc
    # JupyterLab's page style indents lists without this class by 2em, which opened gaps mid-line
    assert toc.count("<ol") == toc.count('<ol class="list-inline">') == 2
    assert report_html.page_title("04_results", [2016, 2017, 2018, 2019]) == "Estimated victims 2016-2019: results"
    assert report_html.page_title("04_results", [2016, 2018]) == "Estimated victims 2016, 2018: results"


def test_publish_hides_the_index_and_formats_counts_and_terms():
    frame = pd.DataFrame({"n_obs": [924.0, 1206.6], "terms": ["I:L;I:J", ""], "ratio": [3.99, 2.5]})
    out = fmt.publish(frame).to_html()
    assert "924.0" not in out and ">924<" in out and ">1,207<" in out
    assert "I×L, I×J" in out and ">none<" in out and "registered" in out
    assert "row_heading" not in out  # no 0..N index column
    by_year = fmt.publish(pd.DataFrame({"persons": [924, 1335]}, index=pd.Index([2016, 2019], name="year"))).to_html()
    assert ">2016<" in by_year and ">2,016<" not in by_year and ">1,335<" in by_year


def test_estimate_frame_rounds_by_the_rule_and_shows_the_interval():
    est = pd.DataFrame(
        {
            "year": ["2016", "all"],
            "group": "total",
            "n_obs": [924.4, 2000.5],
            "n_hat": [4249.7, 12345.0],
            "lower": [995.0, 9950.0],
            "upper": [7050.0, 15049.0],
            "ratio": [4.6, 6.17],
        }
    )
    shown = fmt.estimate_frame(tables.table6(est, rounded=False))
    assert list(shown.columns) == ["year", "registered", "estimated", "95% interval", "ratio"]
    assert shown.iloc[0].tolist() == ["2016", "924", "4,200", "1,000–7,100", "4.6"]
    assert shown.iloc[1].tolist() == ["all years", "2,001", "12,300", "10,000–15,000", "6.2"]


def test_an_open_upper_bound_is_said_in_words_never_printed_as_a_number():
    # interval: profile pools an open model interval into an open upper bound (inf)
    assert fmt.interval_text(4012.3, float("inf")) == "4,000 or more (no upper bound)"
    assert fmt.interval_text(995.0, 7050.0) == "1,000\u20137,100"
    assert fmt.interval_text(995.0, float("nan")) == "no interval"
    assert fmt.interval_text(None, 7050.0) == "no interval"
    assert fmt.interval_text(float("nan"), float("inf")) == "no interval"
    from mse_helpers.report import text

    assert text.interval_range(4012.3, float("inf")) == "4,000 or more, no upper bound"
    assert text.interval_range(995.0, 7050.0) == "1,000-7,100"


def test_print_version_opens_annexes_and_starts_each_page_on_a_new_sheet():
    page = '<html><head><style>x</style></head><body><nav class="mse-nav">n</nav><details><summary>s</summary>t</details></body></html>'
    doc = report_html.print_version([page, page])
    assert doc.count("<details open>") == 2 and "mse-nav" not in doc.split("</head>")[1]
    assert doc.count("break-before: page") == 1


def test_refused_terms_in_words():
    from mse_helpers.report.selection import refused_text

    refused = pd.DataFrame(
        {
            "dataset": [0, 1],
            "type": "two-factor",
            "step": 0,
            "term": "K:Z",
            "status": "mle_does_not_exist",
            "reason": "MLE does not exist: term(s) ['K:Z'] (zero sufficient statistic)",
        }
    )
    text = refused_text(refused, m=2)
    assert "the interaction of registers K and Z" in text and "in 2 of 2 data sets" in text
    assert "never overlap" in text and "['" not in text and "mle_does_not_exist" not in text


def test_screenshot_script_skips_clearly_without_chromium(tmp_path, monkeypatch, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "screenshot_report", PROJECT_ROOT / "scripts" / "screenshot_report.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "04_results.html").write_text("<html></html>")
    monkeypatch.setenv("MSE_CHROMIUM", str(tmp_path / "no-such-chromium"))
    assert mod.main([str(tmp_path)]) == 0
    assert "not installed" in capsys.readouterr().err
    assert mod.main([str(tmp_path), "--require"]) == 2


def test_dark_number_shown_when_estimates_have_it_and_not_required():
    est = pd.DataFrame(
        {
            "year": ["2016"],
            "group": "total",
            "n_obs": [924.0],
            "n_hat": [4249.7],
            "lower": [995.0],
            "upper": [7050.0],
            "ratio": [4.6],
        }
    )
    assert "not registered" not in fmt.estimate_frame(tables.table6(est, rounded=False)).columns
    est = est.assign(dark=[3325.7], dark_lower=[71.0], dark_upper=[6126.0])
    shown = fmt.estimate_frame(tables.table6(est, rounded=False))
    assert shown.iloc[0]["not registered"] == "3,300"
    assert shown.iloc[0]["95% interval (not registered)"] == "70–6,100"
    assert "dark" in tables.table6(est).columns  # rounded table (and tables.xlsx) carry it too


@pytest.mark.slow
def test_every_table_fits_the_printed_page(run):
    if browser.find_chromium() is None:
        pytest.skip(browser.INSTALL_HINT)
    for nb in NOTEBOOKS:
        assert browser.print_overflow(run / "html" / f"{nb}.html") == [], nb


def test_print_check_finds_a_table_wider_than_the_sheet(tmp_path):
    if browser.find_chromium() is None:
        pytest.skip(browser.INSTALL_HINT)
    page = tmp_path / "p.html"
    page.write_text(
        '<html><head></head><body><table style="width:1500px"><caption>wide one</caption>'
        "<tr><td>x</td></tr></table><table><tr><td>narrow</td></tr></table></body></html>"
    )
    (wide,) = browser.print_overflow(page)
    assert wide.endswith("wide one") and int(wide.split("px")[0]) > 700


def test_report_css_is_well_formed():
    css = report_html.CSS
    assert css.count("{") == css.count("}")
    block = css[css.index("@media print") :]
    assert "break-inside: avoid" in block and "break-after: avoid" in block

"""Render every publication page of a run with headless Chromium, as a reader's browser shows it.

Writes, for each page of ``<run>/html/``, ``<name>_top.png`` (the first screen,
1280 x 900: what a reader sees first) and ``<name>_full.png`` (the whole page,
cut at 16,000 px), and prints the page heights and whether every table and
figure fits the printed A4 width. With ``--pdf`` it also writes
``<run>/report.pdf`` (all pages, annexes opened). Without Chromium it says how
to install it and exits 0 (nothing to check), or 2 with ``--require``.

Usage::

    python scripts/screenshot_report.py [RUN_DIR] [--out DIR] [--pdf] [--require]

RUN_DIR defaults to the newest run folder in ``reports/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mse_helpers.report import browser  # noqa: E402


def newest_run(reports: Path) -> Path | None:
    """The newest run folder (by name) in ``reports`` that has publication pages."""
    runs = (
        sorted((d for d in reports.iterdir() if (d / "html").is_dir()), key=lambda d: d.name)
        if reports.is_dir()
        else []
    )
    return runs[-1] if runs else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", type=Path, help="run folder (default: newest in reports/)")
    ap.add_argument("--out", type=Path, help="folder for the PNGs (default: <run>/screenshots)")
    ap.add_argument("--pdf", action="store_true", help="also write <run>/report.pdf")
    ap.add_argument("--pdf-only", action="store_true", help="write <run>/report.pdf, no screenshots")
    ap.add_argument("--require", action="store_true", help="exit 2 when Chromium is missing")
    args = ap.parse_args(argv)
    run = args.run_dir or newest_run(ROOT / "reports")
    if run is None or not (run / "html").is_dir():
        print(
            f"screenshot_report: no run folder with html/ pages ({run or ROOT / 'reports'}); run 'mse run' first",
            file=sys.stderr,
        )
        return 2
    chromium = browser.find_chromium()
    if chromium is None:
        print(f"screenshot_report: skipped: {browser.INSTALL_HINT}", file=sys.stderr)
        return 2 if args.require else 0
    if not args.pdf_only:
        out = args.out or run / "screenshots"
        for page in browser.publication_pages(run):
            top, _ = browser.screenshot(page, out / f"{page.stem}_top.png", chromium=chromium)
            full, height = browser.screenshot(page, out / f"{page.stem}_full.png", full=True, chromium=chromium)
            wide = browser.print_overflow(page, chromium=chromium)
            fit = (
                "every table and figure fits the printed width"
                if not wide
                else f"{len(wide)} wider than the printed page: " + "; ".join(wide[:3])
            )
            print(f"{page.name}: page height {height:,} px; {fit}; {top.name}, {full.name}")
    if args.pdf or args.pdf_only:
        pdf = browser.write_pdf(run, chromium=chromium)
        print(f"wrote {pdf}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

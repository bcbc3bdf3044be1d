"""The list of runs, ``reports/index.html``, and each run's own ``index.html``.

Rebuilt from the run folders' ``manifest.json`` files every time, so it can
never disagree with them. A failed (or unfinished) run is shown as such and is
never presented as a result. A run whose manifest still says ``running`` but
whose process is gone (killed with SIGKILL, machine stopped) is shown as
``interrupted``; the manifest records the runner's process id, host and
process start time for that check (see :func:`runner_gone`).
"""

from __future__ import annotations

import html
import json
import os
import socket
from pathlib import Path

from .. import runfolder

STATUS_RUNNING, STATUS_INTERRUPTED = "running", "interrupted"
INTERRUPTED_NOTE = (
    "the run's process ended before the run finished (killed, or the machine stopped); its results are incomplete"
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ccc; padding: .35rem .8rem; text-align: left; vertical-align: top; }
.ok { color: #1a7f37; } .failed { color: #b42318; font-weight: bold; } .running { color: #9a6700; }
.interrupted { color: #b42318; }
small { color: #666; }
.mse-banner { background: #fff3cd; border: 2px solid #9a6700; color: #6b4700; padding: .5rem .8rem; font-weight: 600; }
.headline { font-size: 1.15rem; } .exploratory { color: #9a6700; font-weight: 600; }
"""


def process_start_ticks(pid: int) -> int | None:
    """Start time of a process (clock ticks after boot, Linux ``/proc``), or None.

    With the pid it identifies a process even after the pid is reused.
    """
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    # Field 2 (the command) may hold spaces and parentheses: count after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # field 22 of proc(5)
    except (IndexError, ValueError):
        return None


def runner_identity() -> dict:
    """What identifies this process for :func:`runner_gone`: pid, host, start time."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "process_start": process_start_ticks(pid)}


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine and has not ended (zombies have)."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except (OSError, IndexError, ValueError):
        pass
    if Path("/proc/self/stat").exists():
        return False  # /proc works here and has no such process
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def runner_gone(runner: dict | None) -> bool:
    """True when the process that wrote a manifest has certainly ended.

    Parameters
    ----------
    runner : dict or None
        ``manifest["runner"]``: ``pid``, ``host``, ``process_start``.

    Returns
    -------
    bool
        False when it cannot be told (no record, another host): such a run
        stays ``running`` rather than being declared dead by mistake.
    """
    if not isinstance(runner, dict) or runner.get("host") != socket.gethostname():
        return False
    pid = runner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if not process_alive(pid):
        return True
    started, now = runner.get("process_start"), process_start_ticks(pid)
    return started is not None and now is not None and started != now  # pid reused


def shown_status(manifest: dict) -> dict:
    """The manifest as shown: ``running`` becomes ``interrupted`` once its process is gone.

    Returns a copy; the manifest on disk is left as its run wrote it.
    """
    if manifest.get("status") != STATUS_RUNNING or not runner_gone(manifest.get("runner")):
        return manifest
    out = dict(manifest, status=STATUS_INTERRUPTED, failure=manifest.get("failure") or INTERRUPTED_NOTE)
    out["notebooks"] = {
        nb: dict(info, status=STATUS_INTERRUPTED) if info.get("status") == STATUS_RUNNING else info
        for nb, info in (manifest.get("notebooks") or {}).items()
    }
    return out


def rounded_headline(run_dir: Path, fallback: str | None = None) -> str | None:
    """The run's estimate per year, rounded for publication, from ``results/estimates.csv``.

    ``"2016: 3,700 (2,900-4,500); 2017: ..."`` (the rule of the report's tables);
    ``fallback`` (the manifest's headline) when the file is missing or unreadable.
    """
    import pandas as pd

    from ..report.format import estimate_text

    est = run_dir / runfolder.RESULTS_DIR / runfolder.ESTIMATES_FILE
    try:
        frame = pd.read_csv(est)
        rows = frame[(frame["group"] == "total") & frame["year"].astype(str).str.fullmatch(r"\d{4}")]
        if rows.empty:
            return fallback
        return "; ".join(
            f"{int(r.year)}: {estimate_text(r.n_hat)} ({estimate_text(r.lower)}-{estimate_text(r.upper)})"
            for r in rows.sort_values("year").itertuples()
        )
    except (OSError, KeyError, ValueError):
        return fallback


def _settings(m: dict) -> dict:
    """m, B (bootstrap) and maxit of a run, from its manifest's parameters."""
    params = m.get("parameters") or {}
    return {k: params.get(k) for k in ("m", "bootstrap", "maxit")}


def _settings_text(m: dict) -> str:
    """``"m=25, B=100"`` (plus ``exploratory`` when below the study's values)."""
    from ..report.html import exploratory_banner

    s = _settings(m)
    if s["m"] is None and s["bootstrap"] is None:
        return ""
    text = f"m={s['m']}, B={s['bootstrap']}"
    return text + (" (exploratory)" if exploratory_banner(m.get("parameters") or {}) else "")


def read_runs(reports_dir: Path) -> list[dict]:
    """Manifests of every run folder, newest first.

    Parameters
    ----------
    reports_dir : Path

    Returns
    -------
    list of dict
        Each manifest with ``_dir`` (the folder) added, its status as
        :func:`shown_status` gives it; folders without a readable manifest
        are listed with status ``unreadable``.
    """
    runs = []
    for d in sorted(p for p in reports_dir.iterdir() if p.is_dir()) if reports_dir.is_dir() else []:
        mf = d / runfolder.MANIFEST_FILE
        if not mf.is_file():
            continue
        try:
            man = json.loads(mf.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            man = {"status": "unreadable", "started": ""}
        man = shown_status(man)
        man["_dir"] = d
        runs.append(man)

    # newest first: by start time, then by folder name (2026-11-22_2 after 2026-11-22)
    def key(m):
        name = m["_dir"].name
        stem, _, k = name.partition("_")
        return (m.get("started") or "", stem, int(k) if k.isdigit() else 1)

    return sorted(runs, key=key, reverse=True)


def _years(m: dict) -> str:
    years = m.get("years")
    if not years:
        return "all in data"
    years = sorted(int(y) for y in years)
    consecutive = years == list(range(years[0], years[-1] + 1))
    return f"{years[0]}-{years[-1]}" if consecutive and len(years) > 2 else ", ".join(map(str, years))


def write_run_page(run_dir: Path, manifest: dict) -> Path:
    """Write ``run_dir/index.html`` linking the run's reports and files."""
    e = html.escape
    rows = []
    for nb, info in manifest.get("notebooks", {}).items():
        pub, code = run_dir / "html" / f"{nb}.html", run_dir / "html_code" / f"{nb}.html"
        links = " · ".join(
            f'<a href="{e(p.relative_to(run_dir).as_posix())}">{label}</a>'
            for p, label in ((pub, "report"), (code, "with code"))
            if p.is_file()
        )
        dur = f"{info['duration_s']:.0f} s" if info.get("duration_s") is not None else ""
        rows.append(
            f"<tr><td>{e(nb)}</td><td class='{e(info.get('status', ''))}'>{e(info.get('status', ''))}</td>"
            f"<td>{dur}</td><td>{links}</td></tr>"
        )
    failure = manifest.get("failure")
    status = manifest.get("status", "")
    from ..report.html import exploratory_banner

    banner = exploratory_banner(manifest.get("parameters") or {})
    headline = rounded_headline(run_dir, manifest.get("headline")) if status == "ok" else None
    results_dir = run_dir / runfolder.RESULTS_DIR
    results = sorted(results_dir.glob("*.*")) if results_dir.is_dir() else []
    result_links = " · ".join(f'<a href="results/{e(f.name)}">{e(f.name)}</a>' for f in results) or "none yet"
    start = "html/04_results.html" if (run_dir / "html" / "04_results.html").is_file() else None
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>Run {e(run_dir.name)}</title>
<style>{STYLE}</style></head><body>
<h1>Run {e(run_dir.name)}</h1>
{f'<p class="mse-banner">{e(banner)}</p>' if banner else ""}
<p>Status: <span class="{e(status)}">{e(status)}</span>
{"<br>" + e(failure) if failure else ""}</p>
<p class="headline">Estimated victims per year (95% interval): {e(headline) if headline else "<small>none</small>"}</p>
<p>Settings: {e(_settings_text(manifest)) or "<small>unknown</small>"}; years {e(_years(manifest))}.
{f' Start reading at <a href="{start}">the results page</a>.' if start and status == "ok" else ""}</p>
<p>Results files (counts and estimates only): {result_links}</p>
<table><tr><th>notebook</th><th>status</th><th>time</th><th>HTML</th></tr>{"".join(rows)}</table>
<p><a href="params.yaml">parameters</a> · <a href="manifest.json">manifest</a> · <a href="../index.html">all runs</a></p>
<p><small>Publish the <code>html/</code> and <code>results/</code> folders only; <code>work/</code> holds
person-level intermediate files and is private.</small></p>
</body></html>
"""
    out = run_dir / "index.html"
    out.write_text(body, encoding="utf-8")
    return out


def write_index(reports_dir: Path) -> Path:
    """Rebuild ``reports_dir/index.html`` (and every run's page) from the manifests.

    Parameters
    ----------
    reports_dir : Path

    Returns
    -------
    Path
        The index file.
    """
    e = html.escape
    rows = []
    for m in read_runs(reports_dir):
        d = m["_dir"]
        write_run_page(d, m)
        status = m.get("status", "")
        # A failed run never shows a headline estimate.
        headline = rounded_headline(d, m.get("headline")) if status == "ok" else None
        dur = f"{m['duration_s'] / 60:.1f} min" if m.get("duration_s") is not None else ""
        rows.append(
            f"<tr><td><a href='{e(d.name)}/index.html'>{e(d.name)}</a></td>"
            f"<td class='{e(status)}'>{e(status)}</td><td>{e(_years(m))}</td>"
            f"<td>{e(headline) if headline else '<small>none</small>'}</td>"
            f"<td class='{'exploratory' if 'exploratory' in _settings_text(m) else ''}'>{e(_settings_text(m))}</td>"
            f"<td>{e((m.get('started') or '')[:16].replace('T', ' '))}</td><td>{dur}</td></tr>"
        )
    table = (
        (
            "<table><tr><th>run</th><th>status</th><th>years</th><th>estimate per year (95% interval)</th>"
            "<th>settings</th><th>started</th><th>duration</th></tr>" + "".join(rows) + "</table>"
        )
        if rows
        else "<p>No runs yet.</p>"
    )
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>MSE runs</title>
<style>{STYLE}</style></head><body>
<h1>Multiple Systems Estimation: runs</h1>
<p>Newest first. Made by <code>mse run</code>; a failed run is marked and shows no estimate.</p>
{table}
</body></html>
"""
    out = reports_dir / "index.html"
    out.write_text(body, encoding="utf-8")
    return out


# --- the previous run (parameter previous_run) ------------------------------------------------


def previous_run(reports_dir: Path, years, exclude: Path | None = None) -> Path | None:
    """The newest good run in ``reports_dir`` whose years overlap ``years`` (``previous_run: auto``).

    Good: status ``ok`` (as :func:`shown_status` gives it) and a
    ``results/estimates.csv``. The run ``exclude`` (the current one) is never
    chosen, nor a run started after it (its manifest's ``started``), so that
    re-reading an old run never compares it with a later one.

    Parameters
    ----------
    reports_dir : Path
        The reports folder of the current run (its parent folder).
    years : iterable of int
        The current run's analysed years.
    exclude : Path, optional

    Returns
    -------
    Path or None
    """
    wanted = {int(y) for y in years}
    skip = Path(exclude).resolve() if exclude is not None else None
    current = runfolder.read_run_manifest(skip) if skip is not None else None
    before = (current or {}).get("started") or None
    for m in read_runs(Path(reports_dir)):
        d = m["_dir"]
        if skip is not None and d.resolve() == skip:
            continue
        if before is not None and (m.get("started") or "") > before:
            continue
        if m.get("status") != "ok" or not runfolder.run_estimates_path(d).is_file():
            continue
        if wanted & {int(y) for y in (m.get("years") or [])}:
            return d
    return None


def resolve_previous_run(value, run_dir: Path, years) -> Path | None:
    """The folder a ``previous_run`` parameter means for the run in ``run_dir``.

    Parameters
    ----------
    value : "auto", None or path
        The parameter as validated (:mod:`mse_helpers.runner.params`).
    run_dir : Path
        The current run folder; ``auto`` looks among its sibling run folders.
    years : iterable of int
        The current run's analysed years.

    Returns
    -------
    Path or None
        None for ``null`` and for ``auto`` when no earlier good run overlaps.
    """
    from .params import AUTO

    if value is None:
        return None
    if value == AUTO:
        return previous_run(Path(run_dir).parent, years, exclude=run_dir)
    return Path(value)

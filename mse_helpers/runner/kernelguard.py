"""Start a notebook kernel that cannot outlive the run of ``mse run``.

``mse run`` launches each notebook kernel as ``python -m
mse_helpers.runner.kernelguard -f CONNECTION_FILE`` instead of ``python -m
ipykernel_launcher``. Before the kernel starts, this module

- makes sure the kernel leads its own process group (jupyter_client already
  starts it in a new session on POSIX); the joblib/loky worker processes the
  notebook starts inherit that group;
- starts a watchdog thread that notices when the runner (the kernel's parent
  process) is gone, for whatever reason, SIGKILL included, and then kills the
  whole group: the kernel and every worker. Workers hold person-level data
  and must never keep running on their own.

ipykernel's own parent poller is switched off: it ends only the kernel
(``os._exit``), which would leave the workers running and could win the race
against this watchdog. (``JPY_PARENT_PID`` stays set: without it ipykernel
takes itself for a terminal ``ipython kernel`` and prints a banner.)
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

#: Seconds between two checks of the parent process.
POLL_S = 0.25


def _group_leader() -> int:
    """Make this process the leader of its own process group; return the group id."""
    if os.getpgid(0) != os.getpid():
        os.setsid()
    return os.getpgid(0)


def leftovers(pid: int) -> list[Path]:
    """Files joblib and loky leave behind when a kernel is killed: memory-mapping folders
    (arrays passed to workers, possibly person-level) and semaphores, named after the
    kernel's pid."""
    folders = {Path("/dev/shm"), Path(tempfile.gettempdir())}
    if os.environ.get("JOBLIB_TEMP_FOLDER"):
        folders.add(Path(os.environ["JOBLIB_TEMP_FOLDER"]))
    found = [p for d in folders if d.is_dir() for p in d.glob(f"joblib_memmapping_folder_{int(pid)}_*")]
    if Path("/dev/shm").is_dir():
        found += Path("/dev/shm").glob(f"sem.loky-{int(pid)}-*")
    return found


def remove_leftovers(pid: int) -> None:
    """Remove :func:`leftovers` of a kernel whose processes are gone."""
    for path in leftovers(pid):
        try:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        except OSError:
            pass


def _kill_others_in_group(pgid: int) -> None:
    """SIGKILL every other process of the group (Linux /proc), so that their files can go."""
    me = os.getpid()
    for d in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else ():
        if d.name.isdigit() and int(d.name) != me:
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                    os.kill(int(d.name), signal.SIGKILL)
            except (OSError, IndexError, ValueError):
                pass


def _watch(parent_pid: int, pgid: int, poll_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            # The runner is gone: the kernel and its workers go too, with their files.
            try:
                _kill_others_in_group(pgid)
                time.sleep(0.1)
                remove_leftovers(os.getpid())
                os.killpg(pgid, signal.SIGKILL)
            finally:
                os._exit(1)
        time.sleep(poll_s)


def start_watchdog(poll_s: float = POLL_S) -> threading.Thread | None:
    """Start the thread that kills this process group once the parent is gone.

    Returns
    -------
    threading.Thread or None
        None where process groups do not exist (Windows).
    """
    if not hasattr(os, "killpg"):
        return None
    parent = os.getppid()
    pgid = _group_leader()
    thread = threading.Thread(target=_watch, args=(parent, pgid, poll_s), name="mse-parent-watchdog", daemon=True)
    thread.start()
    return thread


def main() -> None:
    """Start the watchdog, then the IPython kernel exactly as ``ipykernel_launcher`` does."""
    watchdog = start_watchdog()
    if sys.path and sys.path[0] in ("", os.getcwd()):
        # As ipykernel_launcher: the notebook folder must not shadow packages.
        del sys.path[0]
    from ipykernel import kernelapp

    if watchdog is not None:
        kernelapp.IPKernelApp.init_poller = _no_poller
    kernelapp.launch_new_instance()


def _no_poller(app) -> None:
    """Replaces ``IPKernelApp.init_poller``: the watchdog watches the parent instead."""
    app.poller = None


if __name__ == "__main__":
    main()

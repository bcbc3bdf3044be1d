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
against this watchdog.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

#: Seconds between two checks of the parent process.
POLL_S = 0.25


def _group_leader() -> int:
    """Make this process the leader of its own process group; return the group id."""
    if os.getpgid(0) != os.getpid():
        os.setsid()
    return os.getpgid(0)


def _watch(parent_pid: int, pgid: int, poll_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            # The runner is gone: the kernel and its workers go too.
            try:
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
    thread = threading.Thread(target=_watch, args=(parent, pgid, poll_s), name="mse-parent-watchdog",
                              daemon=True)
    thread.start()
    return thread


def main() -> None:
    """Start the watchdog, then the IPython kernel exactly as ``ipykernel_launcher`` does."""
    os.environ.pop("JPY_PARENT_PID", None)  # must happen before ipykernel.kernelapp is imported
    start_watchdog()
    if sys.path and sys.path[0] in ("", os.getcwd()):
        # As ipykernel_launcher: the notebook folder must not shadow packages.
        del sys.path[0]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()

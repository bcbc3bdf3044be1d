"""Where the per-data-set work of the stages runs: this machine or a Dask cluster.

Imputation, model selection and the bootstrap each run one task per completed
data set (or per model). :class:`Workers` runs such a list of tasks with joblib:

- ``backend="loky"`` (the default): ``n_jobs`` worker processes on this
  machine, or in this process when ``n_jobs`` is 1 or there is one task;
- ``backend="dask"``: joblib's ``dask`` backend on the workers of a running
  Dask distributed scheduler at ``scheduler`` (e.g. ``tcp://host:8786``); the
  cluster decides how many tasks run at once, ``n_jobs`` is not used.

The results are the same on either backend and for any number of workers:
every task draws from its own random stream, derived from the master seed
and the task's data set or model (:mod:`mse_helpers.seeds`), never from which
worker runs it, and the results come back in task order.

This module is a base layer: it imports no stage, report or configuration.
The run parameters are read in one place, :meth:`Workers.from_params`.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
import warnings
from typing import Any, Callable, Iterable, Sequence

from joblib import Parallel, delayed, parallel_config

log = logging.getLogger(__name__)

#: A Dask scheduler address: protocol, ``://``, host (and port), e.g. ``tcp://10.0.0.5:8786``.
SCHEDULER_PATTERN = re.compile(r"^(tcp|tls|ws|wss|ucx|inproc)://[^\s/]+$")
#: Seconds to wait for the scheduler to answer before giving up.
CONNECT_TIMEOUT = 30
#: The start of loky's warning when its memory guard has replaced a worker whose memory grew by
#: 300 MB (the long tasks of bootstrap-then-impute can). The tasks carry on in the new worker
#: with the same results, but the warning names a path of this machine and would stand in the
#: published notebook page: it is silenced in :meth:`Workers.map`.
LOKY_RESTART = "A worker stopped while some jobs were given to the executor"


class Backend(str, enum.Enum):
    """Where the tasks run (the values are the ``backend`` parameter)."""

    LOKY = "loky"
    DASK = "dask"


@dataclasses.dataclass(frozen=True)
class Workers:
    """How to run a stage's per-data-set tasks.

    Attributes
    ----------
    n_jobs : int
        Worker processes on this machine (``loky``; 1: in this process).
    backend : Backend
        ``loky`` (this machine) or ``dask`` (a Dask distributed cluster).
    scheduler : str or None
        The Dask scheduler's address, e.g. ``tcp://host:8786``; required with
        ``dask``, not allowed with ``loky``.

    Raises
    ------
    ValueError
        Naming the parameter (``n_jobs``, ``backend`` or ``scheduler``) and the rule broken.
    """

    n_jobs: int = 1
    backend: Backend = Backend.LOKY
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, int) or self.n_jobs < 1:
            raise ValueError(f"parameter n_jobs: must be an integer >= 1, got {self.n_jobs!r}")
        try:
            backend = Backend(self.backend)
        except ValueError:
            raise ValueError(
                f"parameter backend: must be one of {[b.value for b in Backend]}, got {self.backend!r}"
            ) from None
        object.__setattr__(self, "backend", backend)
        if backend is Backend.DASK:
            if not self.scheduler:
                raise ValueError(
                    "parameter scheduler: required with backend dask: the address of a running "
                    "Dask scheduler, e.g. tcp://host:8786"
                )
            if not isinstance(self.scheduler, str) or not SCHEDULER_PATTERN.match(self.scheduler):
                raise ValueError(
                    f"parameter scheduler: must be an address such as tcp://host:8786, got {self.scheduler!r}"
                )
        elif self.scheduler is not None:
            raise ValueError("parameter scheduler: only used with backend dask (backend is loky)")

    @classmethod
    def from_params(cls, p: Any) -> "Workers":
        """The workers of a run: ``p.n_jobs``, ``p.backend`` (default loky), ``p.scheduler`` (default None)."""
        return cls(
            n_jobs=p.n_jobs, backend=getattr(p, "backend", Backend.LOKY.value), scheduler=getattr(p, "scheduler", None)
        )

    def map(self, func: Callable, tasks: Iterable[Sequence]) -> list:
        """Run ``func(*args)`` for every ``args`` of ``tasks``.

        Parameters
        ----------
        func : callable
            A module-level function (it is pickled to the workers).
        tasks : iterable of tuple
            The positional arguments of each call.

        Returns
        -------
        list
            The results, in the order of ``tasks``.

        Raises
        ------
        ConnectionError
            With ``dask``, when no scheduler answers at ``scheduler``.
        """
        tasks = [tuple(t) for t in tasks]
        if self.backend is Backend.LOKY:
            if self.n_jobs == 1 or len(tasks) <= 1:  # no worker start-up cost for small runs and tests
                return [func(*t) for t in tasks]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=LOKY_RESTART, category=UserWarning)
                return list(Parallel(n_jobs=min(self.n_jobs, len(tasks)))(delayed(func)(*t) for t in tasks))
        return self._map_dask(func, tasks)

    def _map_dask(self, func: Callable, tasks: list[tuple]) -> list:
        from distributed import Client  # only a dask run needs distributed

        try:
            client = Client(self.scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(
                f"parameter scheduler: no Dask scheduler answers at {self.scheduler} within {CONNECT_TIMEOUT} s ({exc})"
            ) from None
        with client:
            log.info("running %d tasks on the Dask cluster at %s", len(tasks), self.scheduler)
            with parallel_config(backend="dask"):
                return list(Parallel(n_jobs=-1)(delayed(func)(*t) for t in tasks))

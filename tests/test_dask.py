"""The stages on a Dask cluster give byte-identical files to loky (mse_helpers.parallel).

A ``distributed.LocalCluster`` with two worker processes on localhost stands in
for a real cluster: imputation, model selection and the bootstrap run through
joblib's dask backend, and every file they write is compared byte by byte with
a run on loky (two local workers). Small settings (five registers, two
covariates, two years, m = 2) keep it under a minute.
"""

import dataclasses
import shutil
import socket

import distributed
import pytest

from mse_helpers import parallel
from mse_helpers.parallel import Backend, Workers
from mse_helpers.runner.params import load_params
from mse_helpers.stages import bootstrap, impute, prepare, selection

SMALL = {
    "m": 2,
    "maxit": 2,
    "bootstrap": 10,
    "n_jobs": 2,
    "sensitivity": ["no-covariates"],
    "registers": ["K", "O", "P", "R", "Z"],
    "covariates": ["S", "U"],
    "years": "2016-2017",
    "three_factor_candidates": 2,
}


class _Run:
    """``p`` with a backend and scheduler, while Params does not (yet) hold them."""

    def __init__(self, p, **extra):
        self._p = p
        self.__dict__.update(extra)

    def __getattr__(self, name):
        return getattr(self._p, name)


def _with_backend(p, backend, scheduler):
    try:
        return dataclasses.replace(p, backend=backend, scheduler=scheduler)
    except TypeError:  # Params without the keys
        return _Run(p, backend=backend, scheduler=scheduler)


def _stages(p, run_dir):
    work, results = run_dir / "work", run_dir / "results"
    impute.run_stage(p, work)
    selection.run_stage(p, work)
    bootstrap._DESIGN_CACHE.clear()  # (in this process; the workers have their own)
    bootstrap.run_stage(p, work, results)


def _files(run_dir):
    return {str(f.relative_to(run_dir)): f.read_bytes() for f in sorted(run_dir.rglob("*")) if f.is_file()}


def test_stages_on_a_dask_cluster_write_the_same_bytes_as_loky(tmp_path):
    p = load_params(None, SMALL)
    prepare.run_stage(p, tmp_path / "loky" / "work")
    shutil.copytree(tmp_path / "loky", tmp_path / "dask")
    _stages(p, tmp_path / "loky")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        on_dask = _with_backend(p, "dask", cluster.scheduler_address)
        assert Workers.from_params(on_dask).backend is Backend.DASK
        _stages(on_dask, tmp_path / "dask")
        # the three stages' tasks did run on the cluster's workers
        prefixes = " ".join(cluster.scheduler.task_prefixes)
        for func in ("complete_dataset", "_task", "_dataset_task"):
            assert f"batch_of_{func}_" in prefixes
        with distributed.Client(cluster) as client:
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        assert len(executed) == 2 and sum(executed.values()) >= 3
    loky, dask = _files(tmp_path / "loky"), _files(tmp_path / "dask")
    assert sorted(loky) == sorted(dask)
    names = set(loky)
    for must in (
        "work/imputed/imp_000.parquet",
        "work/imputed/imp_001.parquet",
        "work/models.json",
        "work/sensitivity.csv",
        "work/bootstrap.parquet",
        "results/estimates.csv",
        "results/models.csv",
    ):
        assert must in names
    differ = [name for name in loky if loky[name] != dask[name]]
    assert differ == []


def test_workers_default_is_todays_loky():
    class Old:  # parameters of a run before backend/scheduler existed
        n_jobs = 3

    w = Workers.from_params(Old())
    assert w == Workers(n_jobs=3, backend=Backend.LOKY, scheduler=None)
    assert Workers(backend="loky").backend is Backend.LOKY  # the parameter's text is accepted
    # in this process for one worker or one task; in order either way
    assert Workers(n_jobs=1).map(divmod, [(7, 2), (9, 4)]) == [(3, 1), (2, 1)]
    assert Workers(n_jobs=2).map(divmod, [(7, 2), (9, 4), (5, 5)]) == [(3, 1), (2, 1), (1, 0)]


_HELD = []


def _grow(i):
    """A task that keeps 320 MB in its worker after a second: loky's memory guard then replaces the worker."""
    import time

    time.sleep(1.1)
    _HELD.append(bytearray(320 * 2**20))
    return i


def test_a_worker_replaced_by_lokys_memory_guard_leaves_no_warning_and_the_same_results():
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert Workers(n_jobs=2).map(_grow, [(i,) for i in range(6)]) == list(range(6))
    assert not [w for w in seen if "A worker stopped while some jobs" in str(w.message)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backend": "spark"}, r"parameter backend: must be one of \['loky', 'dask'\], got 'spark'"),
        ({"backend": "dask"}, r"parameter scheduler: required with backend dask"),
        ({"backend": "dask", "scheduler": "host:8786"}, r"parameter scheduler: must be an address such as tcp://"),
        ({"backend": "dask", "scheduler": "tcp://a b:1"}, r"parameter scheduler: must be an address"),
        ({"backend": "loky", "scheduler": "tcp://host:8786"}, r"parameter scheduler: only used with backend dask"),
        ({"n_jobs": 0}, r"parameter n_jobs: must be an integer >= 1"),
    ],
)
def test_workers_name_the_parameter_and_rule(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Workers(**kwargs)


def test_no_scheduler_at_the_address_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT", 1)
    # a port nobody listens on (bound and closed again)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w = Workers(backend="dask", scheduler=f"tcp://127.0.0.1:{port}")
    with pytest.raises(ConnectionError, match=rf"no Dask scheduler answers at tcp://127.0.0.1:{port}"):
        w.map(divmod, [(1, 1)])

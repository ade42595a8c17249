"""Engines: *how to run it*. Serial, a local process pool, or dask.distributed.

An engine maps :func:`execute` over ``(task, context)`` pairs and yields the
result rows as they finish (any order; rows carry their run index). Tasks are
plain dicts (parameters and a seed) and rows are plain dicts: no model object
ever crosses a process boundary. Pools are created once and kept alive for the
whole sweep (and across the sweeps of a thesis test) because each spawned
worker costs about a second to start (``import mesa`` forces ``spawn``).

``execute`` never raises: a failing run becomes a row with ``status='failed'``,
its error and traceback, so one bad run does not stop a sweep.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import traceback
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

Task = tuple[dict[str, Any], dict[str, Any]]


def execute(item: Task) -> dict[str, Any]:
    """Run one task with its context and return its result row (never raises).

    ``context["model"]`` is a model function's name (``'sim'`` or ``'package.module:function'``)
    or the function itself (a module-level function, pickled by reference).
    """
    from sim.experiments.tasks import resolve_model

    task, context = item
    row: dict[str, Any] = {k: task[k] for k in ("run", "point", "replicate", "seed")}
    t0 = time.perf_counter()
    try:
        model = context["model"]
        fn = model if callable(model) else resolve_model(model)
        values = fn(task, context)
        row.update(status="ok", error=None, traceback=None, values=values)
    except Exception as e:  # a failed run is data, not a crash
        row.update(
            status="failed",
            error=f"{type(e).__name__}: {e}"[:2000],
            traceback=traceback.format_exc()[-8000:],
            values={},
        )
    row["wall_time_s"] = time.perf_counter() - t0
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return row


def _execute_in_worker(item: Task) -> dict[str, Any]:
    """:func:`execute` in a long-lived worker process, then drop every Mesa model it left behind.

    Mesa 3.3 keeps each model in ``Agent._ids`` for the life of the process; a worker runs
    thousands of models (a run that fails before :meth:`~sim.model.model.AllegianceModel.release`
    included), so the registry is emptied after each task. Only in workers: nothing else lives there.
    """
    try:
        return execute(item)
    finally:
        with contextlib.suppress(Exception):
            from mesa.agent import Agent

            Agent._ids.clear()


def _failed_row(task: dict[str, Any], message: str) -> dict[str, Any]:
    row = {k: task[k] for k in ("run", "point", "replicate", "seed")}
    row.update(status="failed", error=message, traceback=None, values={}, wall_time_s=float("nan"), worker="")
    return row


def _warm_up(parent: int) -> None:
    """Import the model in a fresh worker; exit when ``parent`` dies (e.g. a SIGKILLed sweep)."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:  # re-parented: the sweep process is gone
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    # Everything a task needs, imported once per worker rather than in its first task.
    import sim.experiments.tasks
    import sim.run.simulate  # noqa: F401


class Engine(Protocol):
    """Runs tasks and yields result rows as they complete."""

    workers: int
    description: str

    def imap(self, items: Iterable[Task]) -> Iterator[dict[str, Any]]:
        """Yield one result row per item, in completion order."""
        ...

    def close(self) -> None:
        """Release workers."""
        ...


class SerialEngine:
    """Runs every task in this process, one after the other."""

    def __init__(self) -> None:
        self.workers = 1
        self.description = "serial"

    def imap(self, items: Iterable[Task]) -> Iterator[dict[str, Any]]:
        """Yield result rows in task order."""
        for item in items:
            yield execute(item)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> SerialEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProcessEngine:
    """A pool of local worker processes (spawn), kept alive until :meth:`close`.

    At most ``2 * workers`` tasks are in flight, so memory stays flat however
    many runs a sweep has. If a worker process dies (e.g. killed by the OOS
    killer), the runs in flight are recorded as failed and the pool restarts.
    """

    def __init__(self, workers: int = 2) -> None:
        self.workers = max(1, int(workers))
        self.description = f"{self.workers} local worker processes"
        self._pool = None

    def _start(self):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(
            self.workers, mp_context=mp.get_context("spawn"), initializer=_warm_up, initargs=(os.getpid(),)
        )
        return self._pool

    def imap(self, items: Iterable[Task]) -> Iterator[dict[str, Any]]:
        """Yield result rows as workers finish them."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        pool = self._pool or self._start()
        it = iter(items)
        in_flight: dict[Any, dict[str, Any]] = {}
        window = 2 * self.workers
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < window:
                try:
                    item = next(it)
                except StopIteration:
                    exhausted = True
                    break
                in_flight[pool.submit(_execute_in_worker, item)] = item[0]
            if not in_flight:
                return
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                task = in_flight.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    broken = True
                    yield _failed_row(task, "worker process died (BrokenProcessPool)")
            if broken:
                for task in in_flight.values():
                    yield _failed_row(task, "worker process died (BrokenProcessPool)")
                in_flight.clear()
                with contextlib.suppress(Exception):
                    pool.shutdown(wait=False, cancel_futures=True)
                pool = self._start()

    def close(self) -> None:
        """Shut the pool down."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ProcessEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaskEngine:
    """dask.distributed: a scheduler at ``address``, or a ``LocalCluster`` of ``n_workers``.

    The same code runs unchanged on a real cluster: workers need the ``sim``
    package installed; tasks and results are plain data.
    """

    def __init__(self, address: str | None = None, n_workers: int = 2) -> None:
        import logging

        from distributed import Client, LocalCluster

        self._cluster = None
        if address:
            self._client = Client(address)
            self.description = f"dask scheduler {address}"
        else:
            self._cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # The scheduler's HTTP server (health and metrics, no dashboard) on a free loopback port:
                # its default, 8787, is taken by any other cluster running (a second sweep, a parallel test).
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.CRITICAL,  # worker failures come back as failed rows, not log lines
            )
            self._client = Client(self._cluster)
            self.description = f"dask LocalCluster of {n_workers} workers"
        self.workers = 1
        self._refresh_workers()

    def imap(self, items: Iterable[Task]) -> Iterator[dict[str, Any]]:
        """Yield result rows as dask workers finish them."""
        from distributed import as_completed

        it = iter(items)
        window = 2 * self._refresh_workers()
        tasks: dict[str, dict[str, Any]] = {}

        def submit(item: Task):
            fut = self._client.submit(_execute_in_worker, item, pure=False)
            tasks[fut.key] = item[0]
            return fut

        futures = [submit(item) for _, item in zip(range(window), it, strict=False)]
        if not futures:
            return
        ac = as_completed(futures)
        done = 0
        for fut in ac:
            task = tasks.pop(fut.key)
            try:
                row = fut.result()
            except Exception as e:  # a worker lost mid-task
                row = _failed_row(task, f"dask: {type(e).__name__}: {e}")
            fut.release()
            yield row
            done += 1
            if done % 20 == 0:  # workers may join or leave a real cluster during a sweep
                window = 2 * self._refresh_workers()
            while len(tasks) < window:
                nxt = next(it, None)
                if nxt is None:
                    break
                ac.add(submit(nxt))

    def _refresh_workers(self) -> int:
        """Current worker threads on the cluster (at least 1)."""
        self.workers = max(1, sum(self._client.nthreads().values()))
        return self.workers

    def close(self) -> None:
        """Close the client (and the local cluster, if we started one), quietly.

        Shutting down races heartbeats and open connections; what distributed logs then
        (``CommClosedError`` tracebacks) is noise after a finished sweep, so it is silenced.
        """
        import logging

        loggers = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        try:
            with contextlib.suppress(Exception):
                self._client.close()
            if self._cluster is not None:
                with contextlib.suppress(Exception):
                    self._cluster.close()
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_engine(workers: int = 1, scheduler: str | None = None, dask_local: int | None = None) -> Engine:
    """The engine for CLI options: serial (1 worker), a local pool, or dask."""
    if scheduler or dask_local:
        return DaskEngine(scheduler, n_workers=dask_local or 2)
    if workers <= 1:
        return SerialEngine()
    return ProcessEngine(workers)

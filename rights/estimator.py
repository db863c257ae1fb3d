"""`RightsEstimator`: the asynchronous front of the OpenFisca estimator.

- Cheap to construct: nothing is loaded until `start_loading()` or the first `estimate()`.
- `start_loading()` starts the worker and builds the tax-benefit system there, off the request path,
  then warms it up; `ready` tells whether it is done; `estimate()` waits for it when needed.
- OpenFisca never runs on the event loop. By default it runs in a **child process**
  (ProcessPoolExecutor, max_workers=1, spawn) that builds the system once: OpenFisca is pure
  Python, and in a thread it would hold the GIL and slow the loop down (measured in
  docs/rights.md). `mode="thread"` runs it in a worker thread of this process instead (tests,
  command line).
- Concurrent estimates are batched: while one batch runs, new requests wait and then go together
  into ONE vectorised simulation (up to `max_batch` households).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import time
from dataclasses import dataclass, field

from rights.answers import Answers

log = logging.getLogger(__name__)


class RightsUnavailable(RuntimeError):
    """The estimator could not load OpenFisca or its worker stopped."""


@dataclass
class _Request:
    payload: dict
    month: str | None
    future: asyncio.Future = field(repr=False)


class RightsEstimator:
    """Estimates social benefits for `Answers` with OpenFisca-France, batching concurrent calls."""

    def __init__(self, mode: str = "process", month: str | None = None, max_batch: int = 1000, warm_up: bool = True):
        if mode not in ("process", "thread"):
            raise ValueError("mode must be 'process' or 'thread'")
        self.mode = mode
        self.month = month  # fixed reference month 'YYYY-MM' (tests); None = the current month
        self.max_batch = max_batch
        self.warm_up = warm_up
        self.batches_run = 0
        self.simulations_run = 0
        self.households_estimated = 0
        self.load_timings: dict | None = None
        self._executor: concurrent.futures.Executor | None = None
        self._loading: concurrent.futures.Future | None = None
        self._pending: list[_Request] = []
        self._dispatcher: asyncio.Task | None = None

    # --- loading -----------------------------------------------------------------------------
    def start_loading(self) -> None:
        """Start building the tax-benefit system in the background (idempotent, non-blocking)."""
        if self._loading is not None:
            return
        from rights import worker

        if self.mode == "process":
            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        else:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rights")
        self._loading = self._executor.submit(worker.load, self.warm_up, self.month)
        self._loading.add_done_callback(self._loaded)

    def _loaded(self, future: concurrent.futures.Future) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            log.error("rights estimator failed to load: %r", future.exception())
        else:
            self.load_timings = future.result()

    @property
    def ready(self) -> bool:
        """True once the system is loaded and warmed up."""
        return self._loading is not None and self._loading.done() and self._loading.exception() is None

    async def wait_ready(self) -> None:
        self.start_loading()
        try:
            await asyncio.wrap_future(self._loading)
        except Exception as error:
            raise RightsUnavailable("le calcul des droits est indisponible") from error

    # --- estimating --------------------------------------------------------------------------
    async def estimate(self, answers: Answers | dict, month: str | None = None) -> dict:
        """The estimate of one household (see rights.results.build_result for its shape)."""
        if not isinstance(answers, Answers):
            answers = Answers.model_validate(answers)  # invalid answers fail here, before queuing
        payload = answers.model_dump(mode="json")
        self.start_loading()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._dispatcher is None or self._dispatcher.done() or self._dispatcher.get_loop() is not loop:
            # (a new event loop, e.g. one per test, gets its own dispatcher)
            self._pending = [request for request in self._pending if request.future.get_loop() is loop]
            self._dispatcher = asyncio.create_task(self._dispatch())
        self._pending.append(_Request(payload, month or self.month, future))
        return await future

    async def estimate_many(self, answers: list[Answers | dict], month: str | None = None) -> list[dict]:
        return list(await asyncio.gather(*(self.estimate(item, month) for item in answers)))

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # let requests made in the same tick join the first batch
        try:
            await self.wait_ready()
        except RightsUnavailable as error:
            self._fail_pending(error)
            return
        from rights import worker

        while self._pending:
            month = self._pending[0].month
            batch = [request for request in self._pending if request.month == month][: self.max_batch]
            taken = set(map(id, batch))
            self._pending = [request for request in self._pending if id(request) not in taken]
            try:
                results, simulations = await loop.run_in_executor(
                    self._executor, worker.run_batch, [request.payload for request in batch], month
                )
            except concurrent.futures.BrokenExecutor:
                log.error("rights worker process stopped; restarting it")
                self._restart()
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(RightsUnavailable("le calcul des droits a échoué"))
                continue
            except Exception as error:  # a bug in one batch must not leave callers waiting
                log.exception("rights batch failed")
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            self.batches_run += 1
            self.simulations_run += simulations
            self.households_estimated += len(batch)
            for request, result in zip(batch, results):
                if not request.future.done():
                    request.future.set_result(result)

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, []
        for request in pending:
            if not request.future.done():
                request.future.set_exception(error)

    def _restart(self) -> None:
        executor, self._executor, self._loading = self._executor, None, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        self.start_loading()

    def close(self) -> None:
        """Stop the worker (the app calls it on shutdown). The child process is ended, not left to
        finish what it does: one stopped while OpenFisca loads otherwise outlived the app, orphaned
        (~200 MB), since shutdown(wait=False) only stops feeding it."""
        executor, self._executor, self._loading = self._executor, None, None
        if executor is None:
            return
        children = list((getattr(executor, "_processes", None) or {}).values())  # (3.14: terminate_workers())
        executor.shutdown(wait=False, cancel_futures=True)
        for child in children:
            if child.is_alive():
                child.terminate()
        deadline = time.monotonic() + 2
        for child in children:
            child.join(timeout=max(0.0, deadline - time.monotonic()))
        for child in children:  # SIGTERM not taken in time (seen once, a machine under load): SIGKILL
            if child.is_alive():
                child.kill()
                child.join(timeout=2)

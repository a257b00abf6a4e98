"""server.workers: several gateway processes sharing one port through SO_REUSEPORT.

The supervisor also makes the run's metrics directory: each worker keeps its
Prometheus series in files there, so that a scrape answered by any worker
shows the sum of all of them. It is removed when the supervisor stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead

from gateway.log import SERVER_LOG

log = logging.getLogger(SERVER_LOG)

WORKER_ENV = "SHARE_GATEWAY_WORKER"
"""Set in a worker's environment to its number; a worker serves, it does not supervise."""

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's own variable, read when it is imported: series go to files there."""

# A worker that dies is started again, but not faster than this.
RESTART_DELAY_S = 1.0


def worker_number() -> int | None:
    """This process's worker number, or None when it is not a worker."""
    value = os.environ.get(WORKER_ENV)
    return int(value) if value and value.isdigit() else None


def metrics_dir() -> str | None:
    """The metrics directory a worker shares with the others of its run; None elsewhere."""
    return os.environ.get(METRICS_DIR_ENV) if worker_number() is not None else None


class Supervisor:
    """Starts N workers, passes signals on, and restarts a worker that dies."""

    def __init__(self, count: int, config: Path | None) -> None:
        self.count = count
        self.config = config
        self.workers: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.metrics_dir = ""

    async def _spawn(self, number: int) -> None:
        args = [sys.executable, "-m", "gateway", "serve"]
        if self.config is not None:
            args += ["--config", str(self.config)]
        env = {**os.environ, WORKER_ENV: str(number)}
        # Never one inherited from outside: it would mix this run's series with another's.
        env.pop(METRICS_DIR_ENV, None)
        if self.metrics_dir:
            env[METRICS_DIR_ENV] = self.metrics_dir
        self.workers[number] = await asyncio.create_subprocess_exec(*args, env=env)
        log.info("worker %d started (pid %d)", number, self.workers[number].pid)

    async def _watch(self, number: int) -> None:
        while True:
            process = self.workers[number]
            code = await process.wait()
            if self.metrics_dir:
                # A dead worker's counters still count; its gauges (the last flush) do not.
                mark_process_dead(process.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
            if self.stopping.is_set():
                return
            log.error("worker %d exited with %d; starting it again", number, code)
            await asyncio.sleep(RESTART_DELAY_S)
            if self.stopping.is_set():
                return
            await self._spawn(number)

    def _signal(self, signum: int) -> None:
        for process in self.workers.values():
            if process.returncode is None:
                process.send_signal(signum)

    def _stop(self, signum: int) -> None:
        self.stopping.set()
        self._signal(signum)

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT; each worker finishes its requests and flushes."""
        # A directory of this run's own, so no series of an earlier run is ever summed in.
        try:
            self.metrics_dir = tempfile.mkdtemp(prefix="share-gateway-metrics-")
        except OSError as exc:
            log.warning(
                "no metrics directory in %s (%s): each scrape shows only the worker answering it",
                tempfile.gettempdir(),
                exc.strerror,
            )
        try:
            await self._run()
        finally:
            if self.metrics_dir:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._signal, signal.SIGHUP)

        for number in range(1, self.count + 1):
            await self._spawn(number)
        watchers = [asyncio.create_task(self._watch(n)) for n in range(1, self.count + 1)]
        await self.stopping.wait()
        await asyncio.gather(*watchers)
        await asyncio.gather(*(process.wait() for process in self.workers.values()))
        log.info("all workers stopped")

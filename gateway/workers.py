"""server.workers: several gateway processes sharing one port through SO_REUSEPORT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from gateway.log import SERVER_LOG

log = logging.getLogger(SERVER_LOG)

WORKER_ENV = "SHARE_GATEWAY_WORKER"
"""Set in a worker's environment to its number; a worker serves, it does not supervise."""

# A worker that dies is started again, but not faster than this.
RESTART_DELAY_S = 1.0


def worker_number() -> int | None:
    """This process's worker number, or None when it is not a worker."""
    value = os.environ.get(WORKER_ENV)
    return int(value) if value and value.isdigit() else None


class Supervisor:
    """Starts N workers, passes signals on, and restarts a worker that dies."""

    def __init__(self, count: int, config: Path | None) -> None:
        self.count = count
        self.config = config
        self.workers: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()

    async def _spawn(self, number: int) -> None:
        args = [sys.executable, "-m", "gateway", "serve"]
        if self.config is not None:
            args += ["--config", str(self.config)]
        env = {**os.environ, WORKER_ENV: str(number)}
        self.workers[number] = await asyncio.create_subprocess_exec(*args, env=env)
        log.info("worker %d started (pid %d)", number, self.workers[number].pid)

    async def _watch(self, number: int) -> None:
        while True:
            code = await self.workers[number].wait()
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

"""The benchmark's child processes: started on chosen CPUs, always stopped again."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_setup(cpus: frozenset[int]) -> Callable[[], None]:
    """What a child runs before exec: pin it, and have it die with the benchmark.

    The death signal covers the one case a finally block cannot: the benchmark
    itself being killed with SIGKILL.
    """

    def setup() -> None:
        os.sched_setaffinity(0, cpus)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return setup


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Return once something accepts connections on the port; fail if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args!r} exited with {process.returncode} before listening"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout_s:g} s")


def children(pid: int) -> list[int]:
    """The direct children of a process, from /proc."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces: the fields start after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, timeout_s: float = 60.0) -> float:
    """Wait until a process uses under 5% of a CPU over half a second; the seconds waited.

    A gateway that has just seen many keys writes their usage in the next flush; a
    run measured meanwhile on the same CPU would be charged for it.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < 0.025:
            break
    return time.monotonic() - started


def rss_kib(pid: int) -> int:
    """Resident memory of one process (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class Processes:
    """Every long-running child the benchmark starts; leaving the block stops them all."""

    def __init__(self) -> None:
        self._running: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        argv: Sequence[str],
        *,
        cpus: frozenset[int],
        log: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a child with stdout and stderr in `log`, in a session of its own.

        Its own session keeps a Ctrl-C in the terminal from reaching it: the
        benchmark stops its children itself, in order, and waits for them.
        """
        with log.open("ab") as output:
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=child_setup(cpus),
            )
        self._running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL if it does not come in time)."""
        if process in self._running:
            self._running.remove(process)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(f"{process.args!r} did not stop within {timeout_s:g} s") from None

    def stop_all(self) -> None:
        """Stop what is still running, newest first (gateways before their upstreams)."""
        while self._running:
            process = self._running[-1]
            try:
                self.stop(process, timeout_s=30.0)
            except RuntimeError as exc:
                print(f"warning: {exc}")

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()

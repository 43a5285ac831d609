"""Process supervision for the local lab: start a command in its own process group with its own log, recognise it
again from a new shell, stop exactly it, and probe loopback ports.

A started process is remembered as a :class:`ProcRecord` (pid, process group, create time, argv, log). Before any
signal is sent, :func:`group_members` keeps only processes of that group created no earlier than the record (so a
recycled pid is never touched).

Example:
    >>> rec = spawn("sleeper", ["sleep", "30"], env={}, log=Path("/tmp/sleeper.log"))   # doctest: +SKIP
    >>> is_running(rec)                                                                # doctest: +SKIP
    True
    >>> stop(rec)                                                                      # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), None when it is gone.

    Unlike a wall-clock create time this does not move when the clock is stepped (psutil derives create times from
    the boot time, which shifts with the wall clock on some VMs), so it identifies a process exactly.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True, slots=True)
class ProcRecord:
    """What the lab remembers about one process it started (stored in ``state.json``)."""

    name: str
    pid: int
    pgid: int
    create_time: float
    argv: list[str]
    log: str
    port: int | None = None
    start_ticks: int | None = None
    prefix: list[str] | None = None  # e.g. ``ip netns exec NS``: execs ``argv`` in place (same pid)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping) -> ProcRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def spawn(
    name: str, argv: list[str], env: Mapping[str, str], log: Path, port: int | None = None,
    prefix: list[str] | None = None,
) -> tuple[ProcRecord, subprocess.Popen]:
    """Start ``argv`` in a new session (its own process group), stdout and stderr appended to ``log``.

    ``prefix`` runs it through a launcher that execs it in place, keeping the pid (``ip netns exec NS``).

    Raises:
        FileNotFoundError: ``argv[0]`` does not exist (the caller turns it into a :class:`LabError`).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        p = subprocess.Popen(
            [*(prefix or []), *argv],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=log.parent,
        )
    rec = ProcRecord(name, p.pid, p.pid, time.time(), list(argv), str(log), port, start_ticks(p.pid),
                     list(prefix) if prefix else None)
    return rec, p


def _matches(proc: psutil.Process, rec: ProcRecord) -> bool:
    ticks = start_ticks(proc.pid)
    try:
        return ticks is not None and ticks >= (rec.start_ticks or 0) and os.getpgid(proc.pid) == rec.pgid
    except (ProcessLookupError, PermissionError):
        return False


def leader(rec: ProcRecord) -> psutil.Process | None:
    """The recorded process itself when it still runs the recorded command (not a zombie, same start time)."""
    if rec.start_ticks is None or start_ticks(rec.pid) != rec.start_ticks:
        return None
    try:
        p = psutil.Process(rec.pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        cmd = p.cmdline()
    except psutil.Error:
        return None
    if not cmd or (rec.prefix and cmd[: len(rec.prefix)] == rec.prefix):
        return p  # between fork and exec (of the launcher too) the start ticks already identify it
    return p if cmd[: len(rec.argv)] == rec.argv or Path(cmd[0]).name == Path(rec.argv[0]).name else None


def is_running(rec: ProcRecord) -> bool:
    """True when the recorded process is alive and is still the command the lab started."""
    return leader(rec) is not None


def group_members(rec: ProcRecord) -> list[psutil.Process]:
    """Live processes of the record's process group that were created after it (the lab's, nothing else)."""
    out = []
    for p in psutil.process_iter(["pid"]):
        if _matches(p, rec):
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except psutil.Error:
                pass
    return out


def signal_group(rec: ProcRecord, sig: int) -> int:
    """Send ``sig`` to each member of the record's group; return how many were signalled."""
    n = 0
    for p in group_members(rec):
        try:
            p.send_signal(sig)
            n += 1
        except psutil.Error:
            pass
    return n


def stop(recs: list[ProcRecord], grace: float = 8.0, popens: Mapping[str, subprocess.Popen] | None = None) -> list[str]:
    """Stop the groups of ``recs`` (SIGTERM, then SIGKILL after ``grace`` s); wait until none remains.

    Returns the names of the records that had something running.
    """
    stopped = [r.name for r in recs if signal_group(r, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(group_members(r) for r in recs):
        _reap(popens)
        time.sleep(0.1)
    for r in recs:
        signal_group(r, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(group_members(r) for r in recs):
        _reap(popens)
        time.sleep(0.05)
    _reap(popens)
    return stopped


def _reap(popens: Mapping[str, subprocess.Popen] | None) -> None:
    for p in (popens or {}).values():
        p.poll()


def rss_bytes(rec: ProcRecord) -> int:
    """Resident memory of the record's whole process group, in bytes."""
    total = 0
    for p in group_members(rec):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    """True when ``port`` can be bound on all interfaces and on loopback (some lab servers bind 0.0.0.0)."""
    for host in ("0.0.0.0", "127.0.0.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return False
    return not port_accepts(port)


def ephemeral_range() -> range:
    """The kernel's range for outgoing connections' local ports; a server port chosen there can be taken by any
    client between our check and the server's bind, so replacements are picked outside it."""
    try:
        lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return range(lo, hi + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def pick_ports(preferred: Mapping[str, int], max_port: Mapping[str, int] | None = None) -> dict[str, int]:
    """Each preferred port when free, else the next free port above it (outside the ephemeral range, at most
    ``max_port[name]``, default 65535); no two names get the same port.

    Dynamo reads ``DYN_SYSTEM_PORT`` as a signed 16-bit number, so callers cap system ports at 32767.

    Example:
        >>> ports = pick_ports({"a": 20000, "b": 20000})
        >>> ports["a"] != ports["b"]
        True
    """
    limits = dict(max_port or {})
    eph = ephemeral_range()
    chosen: dict[str, int] = {}
    for name, port in preferred.items():
        top = limits.get(name, 65535)
        candidates = [port] + [p for p in range(max(port, 1024) + 1, top + 1) if p not in eph]
        pick = next((p for p in candidates if p not in chosen.values() and port_free(p)), None)
        if pick is None:
            raise OSError(f"no free TCP port for {name} from {port} to {top} on 127.0.0.1")
        chosen[name] = pick
    return chosen


def tail(path: Path | str, n: int = 40) -> str:
    """The last ``n`` lines of a text file ('' when it does not exist); reads at most the last 1 MiB."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - (1 << 20)))
            data = fh.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-n:]) if n > 0 else ""

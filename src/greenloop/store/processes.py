"""Identify the process that runs a batch run, and tell later whether it still runs.

A run row records its host name, process id, the process's start time and the
scope within which the process id is unique. A later process on the same host
compares them with what the kernel reports now: a process id that no longer
exists, or that now belongs to a process started at another time, means the
run's process has ended.

The check reads Linux's /proc. Elsewhere the start time and scope stay
unknown, and such runs are never reported as ended.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PROC = Path("/proc")
BOOT_ID = PROC / "sys" / "kernel" / "random" / "boot_id"
# Fields of /proc/PID/stat after the command name in brackets: the state is
# field 3 and the start time (clock ticks after boot) is field 22.
_STATE_FIELD = 0
_START_FIELD = 19
# A zombie (Z) or dead (X) process has ended, though its id still exists.
ENDED_STATES = frozenset({"Z", "X"})


class ProcessState(enum.StrEnum):
    """The state of a recorded process as the kernel reports it now."""

    RUNNING = "running"
    ENDED = "ended"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as a run row records it.

    `scope` is the boot id and the pid namespace, within which `process_id`
    and `start_ticks` identify one process. Both are None where they cannot be
    read.
    """

    host_name: str
    process_id: int
    scope: str | None
    start_ticks: int | None


def current_process() -> ProcessIdentity:
    """Return the identity of this process."""
    process_id = os.getpid()
    scope = _current_scope()
    # Without a scope, /proc/PID may be another process, so its start time
    # is not read.
    stat = None if scope is None else _stat(process_id)
    return ProcessIdentity(
        host_name=socket.gethostname(),
        process_id=process_id,
        scope=scope,
        start_ticks=None if stat is None else stat[1],
    )


def process_state(
    recorded: ProcessIdentity, observer: ProcessIdentity | None = None
) -> ProcessState:
    """Return whether the recorded process still runs, as `observer` can check it.

    `observer` defaults to this process. The state is ENDED only when the
    kernel shows it: the recorded process ran on the observer's host, boot and
    pid namespace, and its id is free, belongs to a zombie or belongs to a
    process with another start time. A process of another host or scope, or
    one whose /proc entry cannot be read, is UNKNOWN.
    """
    this_process = observer or current_process()
    # NOTE: a run recorded before its host rebooted stays UNKNOWN, so only a
    # stale heartbeat marks it. Another boot id may also be another machine
    # with the same host name, whose processes this one cannot see.
    comparable = (
        recorded.host_name == this_process.host_name
        and recorded.scope is not None
        and recorded.scope == this_process.scope
        and recorded.start_ticks is not None
        and recorded.process_id > 0
    )
    if not comparable:
        return ProcessState.UNKNOWN
    try:
        # Signal 0 only checks that the id exists. It also finds processes
        # that another user owns or that /proc hides (mount option hidepid).
        os.kill(recorded.process_id, 0)
    except ProcessLookupError:
        return ProcessState.ENDED
    except PermissionError:
        pass
    stat = _stat(recorded.process_id)
    if stat is None:
        return ProcessState.UNKNOWN
    state, start_ticks = stat
    if state in ENDED_STATES or start_ticks != recorded.start_ticks:
        return ProcessState.ENDED
    return ProcessState.RUNNING


def _current_scope() -> str | None:
    """Return this process's boot id and pid namespace, or None when unknown.

    The scope is unknown off Linux, and also when /proc belongs to another
    pid namespace than this process, as in a container that shares the host's
    /proc. There /proc/PID names another process than os.getpid() does.
    """
    try:
        proc_self_pid = os.readlink(PROC / "self")
        boot_id = BOOT_ID.read_text(encoding="ascii").strip()
        namespace = os.readlink(PROC / "self" / "ns" / "pid")
    except OSError as error:
        logger.debug("process scope unknown, so no run is found ended: %s", error)
        return None
    if proc_self_pid != str(os.getpid()):
        logger.debug(
            "/proc shows this process as %s, not as process id %d, so it belongs "
            "to another pid namespace; no run is found ended",
            proc_self_pid,
            os.getpid(),
        )
        return None
    return f"{boot_id} {namespace}"


def _stat(process_id: int) -> tuple[str, int] | None:
    """Return the state and start ticks of a process, or None when unreadable."""
    try:
        content = (PROC / str(process_id) / "stat").read_bytes()
    except OSError:
        return None
    # The command name may contain any bytes, spaces and brackets included,
    # so the fields start after its last closing bracket.
    fields = content[content.rfind(b")") + 2 :].split()
    try:
        return fields[_STATE_FIELD].decode("ascii"), int(fields[_START_FIELD])
    except (IndexError, ValueError):
        return None

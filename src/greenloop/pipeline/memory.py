"""The run's peak resident memory and CPU time, as the manifest records them."""

from __future__ import annotations

import os


def peak_rss_mib() -> int | None:
    """Return this process's peak resident memory so far in MiB, or None.

    It is Linux's VmHWM, which counts from the start of the program. The
    `ru_maxrss` of getrusage is not used: it keeps the size of the parent
    process when this one was started from a large one.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        return None
    return None


def cpu_seconds() -> float:
    """Return the CPU seconds, user and system, that this process has used.

    The figure covers every thread but no child process. The identify workers
    are child processes that report their own CPU seconds, so counting the
    children that have ended as well would count the workers twice.
    """
    times = os.times()
    return times.user + times.system

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


# The suffix of a step's entry in the peaks that adds the identify workers'
# peaks to this process's own.
WITH_WORKERS = "_with_workers"


def record_peak(peaks: dict[str, int], step: str) -> int | None:
    """Record the peak resident memory after `step` in `peaks`; return it, or None.

    Linux sums a process's resident pages from approximate per-CPU counters,
    so a later reading of VmHWM can be slightly lower than an earlier one (one
    MiB lower was seen on Linux 6.18). A step's figure is therefore at least the
    figure of any step before it. Entries that add the workers' peaks (their
    names end in WITH_WORKERS) are not this process's, so they do not count.
    """
    peak = peak_rss_mib()
    if peak is None:
        return None
    own = [value for name, value in peaks.items() if not name.endswith(WITH_WORKERS)]
    peaks[step] = max([peak, *own])
    return peaks[step]


def cpu_seconds() -> float:
    """Return the CPU seconds, user and system, that this process has used.

    The figure covers every thread but no child process. The identify workers
    are child processes that report their own CPU seconds, so counting the
    children that have ended as well would count the workers twice.
    """
    times = os.times()
    return times.user + times.system

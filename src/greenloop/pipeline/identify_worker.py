"""The entry point of an identify worker process.

The main process runs `python -P -m greenloop.pipeline.identify_worker` with one
pipe as standard input, which carries requests, and another as standard
output, which carries replies (see identify_step._WorkerPool). The folder that
the main process imported greenloop from comes first on PYTHONPATH, unless it
is a site-packages folder, so this module is found even when greenloop is not
installed. Each message
is a pickle framed by multiprocessing.connection.Connection. The first two
requests are the main process's `sys.path`, then the serving function and the
identifier. The worker sends READY once it has loaded them and then calls the
serving function with both pipes.

A new interpreter started this way imports only this package, never the
caller's main module, so a script that starts a run without
`if __name__ == "__main__":` is not run again in its workers. The catch is
that a serving function or identifier class defined in the main module
cannot be loaded here, so that worker fails to start.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from multiprocessing.connection import Connection

# The first reply of a worker, sent once it has loaded its identifier.
READY = "ready"


def main() -> None:
    """Load the serving function and the identifier, report READY and serve."""
    # Ctrl-C reaches the whole process group, and the main process stops the
    # workers then, so a worker ignores it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = Connection(os.dup(0), writable=False)
    replies = Connection(os.dup(1), readable=False)
    _redirect_standard_streams()
    # The messages are read whole before either is unpickled, so that a pipe
    # closed part-way, as by a main process that was killed, ends the worker
    # quietly, while an error of loading the identifier still shows.
    try:
        path_message = requests.recv_bytes()
        start_message = requests.recv_bytes()
    except (EOFError, OSError):  # the main process stopped before this one started
        return
    sys.path[:] = pickle.loads(path_message)
    target, identifier = pickle.loads(start_message)
    del path_message, start_message
    try:
        replies.send(READY)
    except OSError:  # the main process stopped while this one started
        return
    target(requests, replies, identifier)


def _redirect_standard_streams() -> None:
    """Point standard input at /dev/null and standard output at standard error.

    Otherwise a library that reads standard input would take requests, and
    one that prints would corrupt the replies.
    """
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)


if __name__ == "__main__":
    main()

"""Named fault points, for crash tests that must hit each commit point for certain.

`PAPERS_FAULT=<name>` makes the process kill itself with SIGKILL when it reaches the point `<name>`
(after saying so on stderr), exactly as a power cut or the OOM killer would stop it there.
`PAPERS_FAULT_TRACE=<file>` appends the name of every point reached to that file, so a test can
list the points of a run before killing one run at each of them. Unset, a point costs one lookup.
"""

from __future__ import annotations

import os
import signal
import sys

FAULT_ENV = "PAPERS_FAULT"
TRACE_ENV = "PAPERS_FAULT_TRACE"


def point(name: str) -> None:
    trace = os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")
    if os.environ.get(FAULT_ENV) == name:
        print(f"fault point {name}: killing process {os.getpid()}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

"""A stop asked for by signal: the loop saves its state at the next step and exits."""

from __future__ import annotations

import signal


class StopRequest:
    """Turns SIGTERM/SIGUSR1 (SLURM time limit, preemption, scancel) into a clean save-and-exit."""

    def __init__(self):
        self.signum = None
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.signum = signum

    def __bool__(self):
        return self.signum is not None

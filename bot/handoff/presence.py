"""Which agents are at the desk now: the last time each one's page or API call was seen.

The desk records every authenticated agent request (:meth:`AgentPresence.seen`); an agent counts as present
for ``window_seconds`` after that (the desk page polls the queue every few seconds, so an open page keeps its
agent present and a closed one lets them go within the window). Kept in the desk's memory: the desk runs one
worker, and after a restart nobody is present until an agent's page calls again, which errs on the side of not
promising a person.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Dict, List, Optional


class AgentPresence:
    """Thread-safe last-seen times per agent name; ``clock`` returns monotonic seconds (injectable)."""

    def __init__(self, window_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_seconds = window_seconds
        self.clock = clock
        self._seen: Dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, agent: str) -> None:
        """Record that ``agent`` made a request now."""
        with self._lock:
            self._seen[agent] = self.clock()

    def left(self, agent: str) -> None:
        """Forget ``agent`` (e.g. signed out)."""
        with self._lock:
            self._seen.pop(agent, None)

    def present(self, exclude: Optional[str] = None) -> List[str]:
        """Names of agents seen within the window, sorted; without ``exclude``."""
        cutoff = self.clock() - self.window_seconds
        with self._lock:
            return sorted(name for name, at in self._seen.items() if at >= cutoff and name != exclude)

    def any_present(self) -> bool:
        """True if at least one agent was seen within the window."""
        return bool(self.present())

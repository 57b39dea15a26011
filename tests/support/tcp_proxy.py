"""A loopback TCP proxy that a test can cut and restore, to take a service (PostgreSQL, Redis) away from a
server under test without touching the machine's service itself.

``cut()`` closes the listening socket and every open connection (clients see a reset, new connections are
refused, as when the service is stopped); ``restore()`` listens again on the same port.
"""
from __future__ import annotations

import socket
import threading
from typing import List, Optional, Tuple


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream`` (host, port) in background threads. Use as a context
    manager, or call ``start()`` and ``stop()``."""

    def __init__(self, upstream: Tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: Optional[socket.socket] = None
        self._connections: List[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        """Listen (on a free port the first time, the same port afterwards) and accept in a thread."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut or stopped
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Stop listening and drop every open connection."""
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept thread; close alone does not
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            connections, self._connections = self._connections, []
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pump threads blocked in recv
            except OSError:
                pass
            sock.close()

    def restore(self) -> None:
        """Listen again on the same port."""
        if self._listener is None:
            self.start()

    def stop(self) -> None:
        """Cut for good."""
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

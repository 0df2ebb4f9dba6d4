"""dnstap writers on a unix socket, each connection read by a thread of its own."""

from __future__ import annotations

import contextlib
import socket
import threading

from analyzer import fstrmsocket
from analyzer.watch import Watcher


class SocketSource:
    """dnstap writers connecting to a unix socket (``fstrmsocket.Listener``), each
    connection handshaken and read by a thread of its own through ``Watcher.read``.

    At most ``max_connections`` are read at once; a writer beyond that is closed with a
    warning (writers reconnect). ``stop`` stops listening, removes the socket file and
    closes the connections still open.
    """

    def __init__(self, listener: fstrmsocket.Listener, watcher: Watcher,
                 max_connections: int = 64):
        self.listener = listener
        self.watcher = watcher
        self.max_connections = max_connections
        self._open: set[socket.socket] = set()
        self._guard = threading.Lock()  # around _open
        self._count = 0
        self._stopping = False

    def start(self) -> None:
        threading.Thread(target=self._accept, name=f"accept {self.listener.path}",
                         daemon=True).start()

    def stop(self) -> None:
        with self._guard:
            self._stopping = True
            conns = list(self._open)
        self.listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _warn(self, message: str) -> None:
        if self.watcher.warn is not None:
            self.watcher.warn(message)

    def _accept(self) -> None:
        while True:
            try:
                conn = self.listener.accept()
            except OSError:
                return  # the listener was closed by stop()
            with self._guard:
                if self._stopping:
                    conn.close()
                    return
                self._count += 1
                name = f"unix:{self.listener.path} connection {self._count}"
                if len(self._open) >= self.max_connections:
                    conn.close()
                    self._warn(f"{name}: closed, {self.max_connections} writers are "
                               "connected already")
                    continue
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn, name), name=name,
                             daemon=True).start()

    def _serve(self, conn: socket.socket, name: str) -> None:
        outcomes = self.watcher.metrics.connections
        try:
            try:
                stream = fstrmsocket.open_stream(conn, name)
            except fstrmsocket.Probe:
                return  # not a writer: nothing to count or warn about
            except (fstrmsocket.Refused, OSError) as e:
                outcomes.labels(outcome="refused").inc()
                self._warn(f"{name}: refused: {e}")
                return
            data = stream.raw
            with self.watcher.metrics.writers.track_inprogress():
                self.watcher.read(stream, eager=True, file=False)
            finished = data.finished  # type: ignore[attr-defined]
            outcomes.labels(outcome="finished" if finished else "cut").inc()
        finally:
            with self._guard:
                self._open.discard(conn)
            conn.close()

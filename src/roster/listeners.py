"""One listening socket per worker process, so that the kernel shares connections fairly.

uvicorn's ``--workers`` binds one socket in the supervisor and hands it to every worker.
They then race to accept from one queue, and the first worker to wake takes every
waiting connection at once: measured with 16 keep-alive connections opened together
(``bench``), one worker often held all 16 while the other stayed idle, and finds served
1,140 requests/s instead of about 1,800.

With ``SO_REUSEPORT`` every worker listens on a socket of its own at the same address,
and Linux gives each new connection to one of them by a hash of its addresses and ports.
The supervisor keeps a socket bound to the address but never listening, so that a port
already in use is reported by the supervisor before any worker starts (the kernel routes
connections only to listening sockets). :func:`supervise` runs uvicorn's supervisor
with them.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("uvicorn.error")

#: Where SO_REUSEPORT spreads connections over listening sockets: Linux (since 3.9).
#: The BSDs and macOS accept the option but give every connection to one socket.
FAIR_SHARING = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def shown(host: str, port: int) -> str:
    """``host:port`` as a URL writes it (IPv6 addresses in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bound(host: str, port: int, *, shared: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening), with SO_REUSEPORT if
    ``shared``."""
    # The family as uvicorn chooses it: IPv6 for an address with a colon, else IPv4.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def reserve(host: str, port: int, backlog: int) -> socket.socket:
    """The one listening socket of a server without per-worker listeners, made before
    anything else starts, so that a port in use is the first thing reported (connections
    made meanwhile wait in the backlog)."""
    sock = _bound(host, port, shared=False)
    try:
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def listening(host: str, port: int, backlog: int) -> socket.socket:
    """A worker's own listening socket at ``host:port``. A worker that cannot listen
    exits as failing to start, which stops uvicorn's supervisor instead of restarting it
    again and again."""
    from uvicorn.config import STARTUP_FAILURE

    try:
        sock = _bound(host, port, shared=True)
        sock.listen(backlog)
    except OSError as error:
        log.error("Cannot listen on %s: %s", shown(host, port), error.strerror or error)
        sys.exit(STARTUP_FAILURE)
    return sock


class WorkerListener:
    """Stands for a listening socket in the list uvicorn's supervisor passes to each
    worker it starts; the worker unpickles it as a listening socket of its own.

    It holds the supervisor's reservation of the address (bound, never listening).
    Before that, a socket without SO_REUSEPORT is bound and closed again: SO_REUSEPORT
    alone would let a second server (an old one still running, say) share the port
    silently instead of failing.
    """

    def __init__(self, host: str, port: int, backlog: int) -> None:
        with _bound(host, port, shared=False) as probe:
            port = probe.getsockname()[1]
        self.reservation = _bound(host, port, shared=True)
        self.host, self.port, self.backlog = host, port, backlog

    def __reduce__(self) -> tuple[Callable[..., socket.socket], tuple[Any, ...]]:
        return listening, (self.host, self.port, self.backlog)

    def close(self) -> None:
        self.reservation.close()


def supervise(config: uvicorn.Config, listener: WorkerListener) -> bool:
    """uvicorn's supervisor, each of whose workers listens on a socket of its own, until
    it stops; False if a worker could not start."""
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    where = shown(listener.host, listener.port)
    log.info("Serving on http://%s with %d workers", where, config.workers)
    supervisor = Multiprocess(config, sockets=[cast(socket.socket, listener)])
    try:
        supervisor.run()
    finally:
        listener.close()
    return not any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)


def serve_on(config: uvicorn.Config, sock: socket.socket) -> bool:
    """uvicorn on a socket already listening (:func:`reserve`), in this process or with
    uvicorn's supervisor for several workers, until it stops; False if it could not start."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    log.info("Serving on http://%s", shown(config.host, sock.getsockname()[1]))
    if config.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
        return True
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return server.started

"""Live updates: a client learns within a fraction of a second that its user's data changed.

``hub.py`` fans change notices out to this process's waiting connections; ``pokes.py`` says
what a poke tells a client; ``stream.py`` writes the Server-Sent Events of
``GET /v1/sync/stream``; ``longpoll.py`` holds ``GET /v1/sync/pull?wait=``; ``service.py``
ties them to the store's notices and to the server's lifetime.
"""

from .hub import Hub, HubClosed, Subscriber
from .pokes import Poke, announce
from .service import Live, live_of

__all__ = ["Hub", "HubClosed", "Live", "Poke", "Subscriber", "announce", "live_of"]

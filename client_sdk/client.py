"""``Client``: the one object an app holds. It ties the local store, the API and the sync
engine together; each of those lives in its own module.

One ``Client`` per store file; the file belongs to one user (the first to sign in on it) and
holds that user's copy of the data, the outbox and the session tokens. It may be shared by the
app's threads and a sync loop.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from uuid import UUID

import httpx

from .api import Api, SignedIn, Tokens, User
from .conflicts import Policy
from .entities import Costs, Inventory, Shows, Workouts
from .errors import ClientError, WrongUser
from .live import LiveSettings, LiveSync, StatusListener
from .local import ChangeListener, LocalData
from .loop import ErrorListener, ReportListener, SyncLoop
from .records import PendingOp, Rejection, SyncReport
from .retry import RetryPolicy
from .store import LocalStore
from .sync import RejectionListener, SyncEngine, SyncSettings
from .transport import Transport

_ACCESS, _REFRESH, _USER, _EMAIL, _CLIENT = (
    "access_token",
    "refresh_token",
    "user_id",
    "email",
    "client_id",
)


class _StoredTokens:
    """The tokens in the store's meta table; both change in one transaction (rotation)."""

    def __init__(self, store: LocalStore) -> None:
        self._store = store

    def load_tokens(self) -> Tokens | None:
        with self._store.transaction():
            access = self._store.get_meta(_ACCESS)
            refresh = self._store.get_meta(_REFRESH)
        return None if access is None or refresh is None else Tokens(access, refresh)

    def save_tokens(self, tokens: Tokens | None) -> None:
        with self._store.transaction():
            self._store.set_meta(_ACCESS, tokens.access_token if tokens else None)
            self._store.set_meta(_REFRESH, tokens.refresh_token if tokens else None)


class Client:
    """An offline-first client of one sync server, for one user, on one local file.

    ``path`` is the SQLite file (created if missing; ``":memory:"`` for a throwaway client).
    ``conflicts`` maps an entity (``show``, ``cost``, ``workout``, ``product``) to its conflict
    policy (``"server_wins"``, ``"client_wins"``, ``"merge"`` or a callable, see
    ``client_sdk.conflicts``); others use ``default_conflict``. ``transport`` replaces the HTTP
    transport (for tests, proxies); ``retry`` tunes the backoff.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        base_url: str,
        *,
        conflicts: Mapping[str, Policy] | None = None,
        default_conflict: Policy = "merge",
        on_rejection: RejectionListener | None = None,
        batch_size: int = 200,
        page_size: int = 500,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= batch_size <= 1000 or not 1 <= page_size <= 5000:
            raise ValueError("batch_size must be 1..1000 and page_size 1..5000")
        self.store = LocalStore(path)
        try:
            self._local = LocalData(self.store)
            self._transport = Transport(
                base_url, transport=transport, timeout=timeout, retry=retry, sleep=sleep
            )
            self._tokens = _StoredTokens(self.store)
            self.api = Api(self._transport, self._tokens)
            settings = SyncSettings(
                self._client_id(), batch_size, page_size, default_conflict, dict(conflicts or {})
            )
            listeners = [] if on_rejection is None else [on_rejection]
            self._engine = SyncEngine(self._local, self.api, settings, listeners)
        except BaseException:
            self.store.close()
            raise
        self.shows = Shows(self._local)
        self.costs = Costs(self._local)
        self.workouts = Workouts(self._local)
        self.inventory = Inventory(self._local)
        self._loops: list[SyncLoop | LiveSync] = []

    def _client_id(self) -> UUID:
        """This installation's id (sent with every push), made once per store file."""
        with self.store.transaction():
            known = self.store.get_meta(_CLIENT)
            if known is None:
                known = str(uuid.uuid4())
                self.store.set_meta(_CLIENT, known)
        return UUID(known)

    @property
    def client_id(self) -> UUID:
        return self._engine.settings.client_id

    def close(self) -> None:
        """Stop what ``watch`` and ``live`` started, and close the file and connections."""
        for loop in self._loops:
            loop.stop()
        self._transport.close()
        self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- auth ------------------------------------------------------------------------------------

    def register(self, email: str, password: str, name: str | None = None) -> User:
        """Create an account and sign this client in with it."""
        return self._signed_in(self.api.register(email, password, name, self._device()))

    def login(self, email: str, password: str) -> User:
        """Sign in. Raises ``AuthError`` for wrong credentials, ``WrongUser`` if the store
        belongs to another account."""
        return self._signed_in(self.api.login(email, password, self._device()))

    def logout(self) -> None:
        """End the session on the server and forget the tokens. Local data and queued ops
        stay, and are pushed after the same user logs in again."""
        self.api.logout()

    @property
    def user_id(self) -> UUID | None:
        """The account this store belongs to (None before the first sign-in)."""
        with self.store.transaction():
            known = self.store.get_meta(_USER)
        return None if known is None else UUID(known)

    @property
    def signed_in(self) -> bool:
        return self._tokens.load_tokens() is not None

    def _device(self) -> str:
        return f"client-sdk:{self.client_id}"

    def _signed_in(self, signed: SignedIn) -> User:
        with self.store.transaction():
            owner = self.store.get_meta(_USER)
            if owner is None or owner == str(signed.user.id):
                self.store.set_meta(_USER, str(signed.user.id))
                self.store.set_meta(_EMAIL, signed.user.email)
                self.store.set_meta(_ACCESS, signed.access_token)
                self.store.set_meta(_REFRESH, signed.refresh_token)
                return signed.user
        # Not this store's account: end the session just opened, keep the data untouched.
        stray = Api(self._transport, _Fixed(signed.tokens))
        with contextlib.suppress(ClientError):
            stray.logout()
        raise WrongUser(f"this store holds the data of another account ({owner})")

    # -- data ------------------------------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Push the outbox, then pull every change; see ``client_sdk.sync``. Raises
        ``NetworkError`` / ``ServerError`` / ``RateLimited`` when the server stays out of reach
        (nothing is lost: the next sync resumes), ``SessionRevoked`` when a new login is
        needed."""
        return self._engine.sync()

    def pending(self) -> list[PendingOp]:
        """The outbox: ops not yet applied, and applied ones not pulled back yet."""
        return self._local.pending()

    def rejections(self) -> list[Rejection]:
        """Every op the server refused and every conflict that lost values, oldest first,
        until dismissed."""
        return self._local.rejections()

    def dismiss(self, rejections: Iterable[Rejection] | None = None) -> None:
        """Forget some rejections (all of them by default)."""
        self._local.dismiss(rejections)

    def on_change(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener(changed)`` after each local write and each applied sync step, from
        the thread that made the change (see ``Changed``). Returns the function that
        unsubscribes it."""
        return self._local.subscribe(listener)

    def on_rejection(self, listener: RejectionListener) -> None:
        """Call ``listener(rejection)`` for each new rejection, during the sync that found it."""
        self._engine.on_rejection.append(listener)

    def watch(
        self,
        interval: float = 30.0,
        *,
        sync_on_write: bool = True,
        on_sync: ReportListener | None = None,
        on_error: ErrorListener | None = None,
    ) -> SyncLoop:
        """Start syncing in the background every ``interval`` seconds (and soon after each
        local write, with ``sync_on_write``); returns the loop (``stop()`` it, or use it as a
        context manager). ``close()`` stops it too."""
        loop = SyncLoop(self.sync, interval=interval, on_sync=on_sync, on_error=on_error)
        if sync_on_write:
            self._sync_after_writes(loop)
        self._loops.append(loop)
        return loop.start()

    def live(
        self,
        settings: LiveSettings | None = None,
        *,
        sync_on_write: bool = True,
        on_sync: ReportListener | None = None,
        on_error: ErrorListener | None = None,
        on_status: StatusListener | None = None,
    ) -> LiveSync:
        """Sync whenever the server says this user's data changed (an event stream held open
        in the background), and soon after each local write with ``sync_on_write``; poll when
        streaming does not work. Returns the running ``LiveSync`` (``stop()`` it, or use it as
        a context manager); ``close()`` stops it too. See ``client_sdk.live`` for how it
        reconnects and when it polls; ``on_status`` hears each change of its ``LiveStatus``.
        A session that ended stops it with ``SessionRevoked``, given to ``on_error``."""
        live = LiveSync(
            self.api,
            self._engine.cursor,
            self.sync,
            settings or LiveSettings(),
            on_sync=on_sync,
            on_error=on_error,
            on_status=on_status,
        )
        if sync_on_write:
            self._sync_after_writes(live.loop)
        self._loops.append(live)
        return live.start()

    def _sync_after_writes(self, loop: SyncLoop) -> None:
        self.on_change(lambda changed: loop.trigger() if changed.origin == "local" else None)


class _Fixed:
    """Tokens held in memory only: to log out a session this store must not keep."""

    def __init__(self, tokens: Tokens) -> None:
        self._tokens: Tokens | None = tokens

    def load_tokens(self) -> Tokens | None:
        return self._tokens

    def save_tokens(self, tokens: Tokens | None) -> None:
        self._tokens = tokens

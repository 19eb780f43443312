"""Where the sandbox keeps what the simulated providers know: in memory, or in a SQLite file.

Every change to simulated objects happens inside `store.transaction()`, which yields the data as a
tree of mappings: `data["invoices"][id]`, `data["transactions"][invoice id]` (a list),
`data["refunds"][invoice id]`, `data["idempotency"][key]`, `data["onepipe"]["transactions" |
"balances" | "tokens"][key]` and plain values such as `data["next_quote_id"]`.

- `MemoryStore`: the tree is a plain dict in this process, guarded by a lock (fast; tests).
- `SqliteStore`: one row per simulated object in a SQLite file, shared by every process that opens
  it. A transaction is `BEGIN IMMEDIATE` (the write lock first, then read, modify, write), so two
  processes never both read an object and then overwrite each other's change; objects are read
  fresh in each transaction and only the ones that changed are written back. A busy timeout makes
  a process wait its turn. The file survives restarts.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, NoReturn

MEMORY = ":memory:"
#: Keyed collections of simulated objects (a key maps to one JSON value).
COLLECTIONS = ("invoices", "transactions", "refunds", "idempotency")
ONEPIPE_COLLECTIONS = ("transactions", "balances", "tokens")
#: Plain values and their value when never set.
SCALAR_DEFAULTS: dict[str, Any] = {"next_quote_id": 1, "last_ms": 0}
BUSY_TIMEOUT = 30.0  # seconds a process waits for another's transaction before giving up
SCHEMA_VERSION = 1
SQLITE_HEADER = b"SQLite format 3\x00"


def empty_data() -> dict[str, Any]:
    return {
        **{name: {} for name in COLLECTIONS},
        "onepipe": {name: {} for name in ONEPIPE_COLLECTIONS},
        **SCALAR_DEFAULTS,
    }


class MemoryStore:
    """The sandbox's data in this process only: a dict guarded by a re-entrant lock."""

    path: str | None = None

    def __init__(self, lock: threading.RLock | None = None) -> None:
        self.lock = lock or threading.RLock()
        self.data: dict[str, Any] = empty_data()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        with self.lock:
            yield self.data

    def current(self) -> dict[str, Any]:
        return self.data

    def reset(self) -> None:
        with self.lock:
            self.data = empty_data()

    def close(self) -> None:
        pass


# -- the SQLite store ---------------------------------------------------------------------------

_MISSING = object()


class ReadOnlyDict(dict):
    """A copy of a stored object read outside a transaction: changing it would change nothing."""

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            "This is a copy of the sandbox's data read outside a transaction; change simulated objects "
            "inside `with state.transaction() as data:` (a file-backed sandbox is shared by every process)."
        )

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = __ior__ = _refuse

    def __deepcopy__(self, memo: dict) -> dict:  # a deep copy is an ordinary, changeable dict
        return {key: copy.deepcopy(value, memo) for key, value in self.items()}

    def __reduce__(self) -> tuple[type[dict], tuple[dict]]:
        return dict, (dict(self),)


class ReadOnlyList(list):
    _refuse = ReadOnlyDict._refuse
    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __iadd__ = __imul__ = _refuse

    def __deepcopy__(self, memo: dict) -> list:
        return [copy.deepcopy(value, memo) for value in self]

    def __reduce__(self) -> tuple[type[list], tuple[list]]:
        return list, (list(self),)


def frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return ReadOnlyDict({key: frozen(item) for key, item in value.items()})
    if isinstance(value, list):
        return ReadOnlyList(frozen(item) for item in value)
    return value


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class _Transaction:
    """One BEGIN IMMEDIATE ... COMMIT: objects are loaded on first use, kept by identity (so changes
    made in place are seen), and written back at the end when they changed."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        # (kind, key) -> [value, the JSON it was loaded from (None: new), deleted]
        self.loaded: dict[tuple[str, str], list] = {}
        self.view = DataView(lambda fn: fn(self))

    def get(self, kind: str, key: str) -> Any:
        entry = self.loaded.get((kind, key))
        if entry is None:
            row = self.connection.execute(
                "SELECT value FROM objects WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
            if row is None:
                return _MISSING
            entry = self.loaded[(kind, key)] = [json.loads(row[0]), row[0], False]
        return _MISSING if entry[2] else entry[0]

    def put(self, kind: str, key: str, value: Any) -> None:
        entry = self.loaded.get((kind, key))
        if entry is None:
            self.get(kind, key)
            entry = self.loaded.get((kind, key))
        if entry is None:
            self.loaded[(kind, key)] = [value, None, False]
        else:
            entry[0], entry[2] = value, False

    def delete(self, kind: str, key: str) -> None:
        if self.get(kind, key) is _MISSING:
            raise KeyError(key)
        self.loaded[(kind, key)][2] = True

    def keys(self, kind: str) -> list[str]:
        rows = self.connection.execute("SELECT key FROM objects WHERE kind = ? ORDER BY id", (kind,))
        keys = [key for (key,) in rows]
        present = set(keys)
        for (entry_kind, key), (_, original, deleted) in self.loaded.items():
            if entry_kind == kind and original is None and not deleted and key not in present:
                keys.append(key)
        return [key for key in keys if not self.loaded.get((kind, key), (None, None, False))[2]]

    def values(self, kind: str) -> list[Any]:
        for key, raw in self.connection.execute("SELECT key, value FROM objects WHERE kind = ? ORDER BY id", (kind,)):
            if (kind, key) not in self.loaded:
                self.loaded[(kind, key)] = [json.loads(raw), raw, False]
        return [value for value in (self.get(kind, key) for key in self.keys(kind)) if value is not _MISSING]

    def count(self, kind: str) -> int:
        return len(self.keys(kind))

    def flush(self) -> None:
        for (kind, key), (value, original, deleted) in self.loaded.items():
            if deleted:
                if original is not None:
                    self.connection.execute("DELETE FROM objects WHERE kind = ? AND key = ?", (kind, key))
                continue
            raw = _dump(value)
            if raw != original:
                self.connection.execute(
                    "INSERT INTO objects (kind, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
                    (kind, key, raw),
                )


Runner = Callable[[Callable[[_Transaction], Any]], Any]


class Collection(MutableMapping):
    """One kind of simulated object (`data["invoices"]`), keyed by id."""

    def __init__(self, kind: str, run: Runner, *, read_only: bool = False) -> None:
        self.kind, self._run, self._read_only = kind, run, read_only

    def _out(self, value: Any) -> Any:
        return frozen(value) if self._read_only else value

    def __getitem__(self, key: str) -> Any:
        value = self._run(lambda tx: tx.get(self.kind, str(key)))
        if value is _MISSING:
            raise KeyError(key)
        return self._out(value)

    def __setitem__(self, key: str, value: Any) -> None:
        self._run(lambda tx: tx.put(self.kind, str(key), value))

    def __delitem__(self, key: str) -> None:
        self._run(lambda tx: tx.delete(self.kind, str(key)))

    def __contains__(self, key: object) -> bool:
        return self._run(lambda tx: tx.get(self.kind, str(key))) is not _MISSING

    def __iter__(self) -> Iterator[str]:
        return iter(self._run(lambda tx: tx.keys(self.kind)))

    def __len__(self) -> int:
        return self._run(lambda tx: tx.count(self.kind))

    # A list, not a view: the values are read in one store transaction (MutableMapping's views read lazily).
    def values(self) -> list[Any]:  # type: ignore[override]
        return self._out(self._run(lambda tx: tx.values(self.kind)))

    # A list, not a view, for the same reason.
    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        def both(tx: _Transaction) -> list[tuple[str, Any]]:
            tx.values(self.kind)
            return [(key, tx.get(self.kind, key)) for key in tx.keys(self.kind)]

        return [(key, self._out(value)) for key, value in self._run(both)]

    def setdefault(self, key: str, default: Any = None) -> Any:
        def run(tx: _Transaction) -> Any:
            value = tx.get(self.kind, str(key))
            if value is _MISSING:
                tx.put(self.kind, str(key), default)
                value = default
            return value

        return self._out(self._run(run))

    def __repr__(self) -> str:
        return f"<sandbox {self.kind}: {len(self)} stored>"


class DataView(MutableMapping):
    """The root of the stored data: collections by name, `onepipe` (a group of collections), and
    plain values (`next_quote_id`, `last_ms`, `legacy_lists`, `onepipe_notify_url`, ...)."""

    def __init__(self, run: Runner, *, read_only: bool = False, prefix: str = "") -> None:
        self._run, self._read_only, self._prefix = run, read_only, prefix

    def _names(self) -> tuple[str, ...]:
        return ONEPIPE_COLLECTIONS if self._prefix else (*COLLECTIONS, "onepipe")

    def __getitem__(self, name: str) -> Any:
        if self._prefix:
            if name not in ONEPIPE_COLLECTIONS:
                raise KeyError(name)
            return Collection(self._prefix + name, self._run, read_only=self._read_only)
        if name in COLLECTIONS:
            return Collection(name, self._run, read_only=self._read_only)
        if name == "onepipe":
            return DataView(self._run, read_only=self._read_only, prefix="onepipe.")
        value = self._run(lambda tx: tx.get("meta", name))
        if value is _MISSING:
            if name in SCALAR_DEFAULTS:
                return SCALAR_DEFAULTS[name]
            raise KeyError(name)
        return frozen(value) if self._read_only else value

    def __setitem__(self, name: str, value: Any) -> None:
        if self._prefix or name in COLLECTIONS or name == "onepipe":
            raise TypeError(f"Change the objects in data[{name!r}], not the collection itself.")
        self._run(lambda tx: tx.put("meta", name, value))

    def __delitem__(self, name: str) -> None:
        if self._prefix or name in COLLECTIONS or name == "onepipe":
            raise TypeError(f"Delete the objects in data[{name!r}], not the collection itself.")
        self._run(lambda tx: tx.delete("meta", name))

    def __iter__(self) -> Iterator[str]:
        if self._prefix:
            return iter(ONEPIPE_COLLECTIONS)
        stored = self._run(lambda tx: tx.keys("meta"))
        return iter([*self._names(), *dict.fromkeys([*SCALAR_DEFAULTS, *stored])])

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __repr__(self) -> str:
        return f"<sandbox data: {', '.join(self)}>"


class _Connection:
    """A thread's connection, closed when the thread ends (its thread-local value is then dropped)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.connection.close()

    __del__ = close


class SqliteStore:
    """The sandbox's data in a SQLite file: every process that opens the same file shares it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.lock = threading.RLock()  # threads of this process take turns without polling the file lock
        self._local = threading.local()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._prepared_pid: int | None = None

    # -- connections ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode = WAL")  # readers never wait for the writer
        except sqlite3.OperationalError:  # e.g. a file system without shared memory: the default journal works too
            pass
        connection.execute("PRAGMA synchronous = NORMAL")
        return connection

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork: connections are never shared by processes)."""
        local = self._local
        pid = os.getpid()
        if getattr(local, "pid", None) != pid:
            if self._prepared_pid != pid:
                self._prepare()
            local.connection, local.pid = _Connection(self._connect()), pid
            self._connections.add(local.connection)
        return local.connection.connection

    def _prepare(self) -> None:
        """Create the table (once per process), importing a JSON state file of an older version."""
        legacy = self._take_legacy_json()
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS objects (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
                    "key TEXT NOT NULL, value TEXT NOT NULL, UNIQUE (kind, key))"
                )
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                if legacy is not None:
                    tx = _Transaction(connection)
                    _import(tx.view, legacy)
                    tx.flush()
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        finally:
            connection.close()
        self._prepared_pid = os.getpid()

    def _take_legacy_json(self) -> dict | None:
        """The sandbox used to keep one JSON document in SANDBOX_STATE_FILE: move it aside and import it."""
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            return None
        if not head or head == SQLITE_HEADER:
            return None
        try:
            with open(self.path, encoding="utf-8") as fh:
                legacy = json.load(fh)
            assert isinstance(legacy, dict)
        except (ValueError, AssertionError, UnicodeDecodeError):
            raise ValueError(f"{self.path} is neither a sandbox store (SQLite) nor an older JSON state file.") from None
        try:
            os.replace(self.path, self.path + ".json-backup")
        except FileNotFoundError:  # another process moved it first and imports it
            return None
        return legacy

    # -- transactions ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[DataView]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception); a nested call joins the open one."""
        current = getattr(self._local, "transaction", None)
        if current is not None and self._local.pid == os.getpid():
            yield current.view
            return
        with self.lock:
            connection = self.connection()
            connection.execute("BEGIN IMMEDIATE")
            tx = self._local.transaction = _Transaction(connection)
            try:
                yield tx.view
                tx.flush()
                connection.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
            finally:
                self._local.transaction = None

    def current(self) -> DataView:
        """The open transaction's data in this thread, else a read-mostly view: each access is its own
        transaction, objects come back as read-only copies, plain values (`legacy_lists`) can be set."""
        tx = getattr(self._local, "transaction", None)
        if tx is not None and self._local.pid == os.getpid():
            return tx.view

        def run(fn: Callable[[_Transaction], Any]) -> Any:
            with self.transaction() as view:
                return view._run(fn)

        return DataView(run, read_only=True)

    def reset(self) -> None:
        with self.transaction():
            self._local.transaction.loaded.clear()
            self._local.transaction.connection.execute("DELETE FROM objects")

    def close(self) -> None:
        """Close every thread's connection (the file stays; a later use opens new ones)."""
        for connection in list(self._connections):
            connection.close()
        self._local = threading.local()


def _import(view: DataView, legacy: dict[str, Any]) -> None:
    for name in COLLECTIONS:
        for key, value in (legacy.get(name) or {}).items():
            view[name][key] = value
    for name in ONEPIPE_COLLECTIONS:
        for key, value in ((legacy.get("onepipe") or {}).get(name) or {}).items():
            view["onepipe"][name][key] = value
    for name, value in legacy.items():
        if name not in COLLECTIONS and name != "onepipe":
            view[name] = value


def open_store(location: str | os.PathLike | None, lock: threading.RLock | None = None) -> MemoryStore | SqliteStore:
    if location is None or os.fspath(location) in {"", MEMORY}:
        return MemoryStore(lock)
    return SqliteStore(location)

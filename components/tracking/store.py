"""A local MLflow store that moves with its checkout.

MLflow's SQLite store keeps absolute artifact locations: it resolves the relative ones it is given
when it writes them (``experiments.artifact_location``, ``runs.artifact_uri``,
``model_versions.storage_location``, ``logged_models.artifact_location``, MLflow 3.17). A checkout
that is moved or copied would then read, and write, the artifacts of the old place, or fail when
it is gone.

The project's store lives inside the checkout (``mlflow.db`` beside ``mlartifacts/``) and names
artifacts inside the checkout only, so its experiments say where the checkout was: an experiment
``<name>`` created here has its artifacts at ``<root>/mlartifacts/<name>`` (MLflow's own
``Default`` experiment at ``<root>/mlruns/0``). When a store file inside ``root`` finds its
experiments at another root, the checkout moved: :func:`relocate` rewrites that prefix to ``root``
in every artifact location, in one transaction, before MLflow reads anything. A store outside the
checkout (``MLFLOW_TRACKING_URI`` naming a shared file or a server) is never touched.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

# (table, column) pairs that hold artifact locations in MLflow's SQLAlchemy schema; a pair that
# a given MLflow version lacks is skipped.
ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
    ("logged_models", "artifact_location"),
)
_DONE: set[tuple[str, str]] = set()


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` tracking URI (None for any other store)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(uri.removeprefix("sqlite:///")).split("?", 1)[0])


def _as_path(location: str) -> Path | None:
    """A local artifact location (``file://`` URI or plain absolute path) as a path."""
    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    if location.startswith("/"):
        return Path(location)
    return None


def recorded_roots(db: Path) -> set[Path]:
    """The checkout roots the store's experiments were created under (usually one)."""
    con = sqlite3.connect(db, timeout=30)
    try:
        rows = con.execute("SELECT experiment_id, name, artifact_location FROM experiments").fetchall()
    except sqlite3.DatabaseError:  # an empty file, or a store MLflow has not created its tables in yet
        return set()
    finally:
        con.close()
    roots = set()
    for exp_id, name, location in rows:
        path = _as_path(location or "")
        if path is None:
            continue
        if (path.parent.name, path.name) in (("mlartifacts", name), ("mlruns", str(exp_id))):
            roots.add(path.parent.parent)
    return roots


def _prefixes(root: Path) -> list[str]:
    """The two spellings of a root in artifact locations: ``file:///root/`` and ``/root/``."""
    return [root.as_uri().rstrip("/") + "/", str(root).rstrip("/") + "/"]


def relocate(root: Path, uri: str) -> list[Path]:
    """Point the artifact locations of the store at ``uri`` to ``root`` if the checkout moved.

    Only a SQLite store whose file sits inside ``root`` is considered. Idempotent and cheap (one
    small query) when nothing moved; done once per process and store.

    Returns:
        the earlier roots that were rewritten (empty when nothing moved).
    """
    root = Path(root).resolve()
    db = sqlite_path(uri)
    if db is None or (uri, str(root)) in _DONE:
        return []
    db = db.resolve()
    if not db.is_file() or not db.is_relative_to(root):
        return []
    moved = sorted(r for r in recorded_roots(db) if r != root)
    if moved:
        con = sqlite3.connect(db, timeout=60, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")  # one writer: concurrent stages after a move rewrite once
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for table, column in ARTIFACT_COLUMNS:
                if table not in tables or column not in {r[1] for r in con.execute(f"PRAGMA table_info('{table}')")}:
                    continue
                for old in moved:
                    for before, after in zip(_prefixes(old), _prefixes(root), strict=True):
                        con.execute(
                            f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                            f'WHERE substr("{column}", 1, ?) = ?',
                            (after, len(before) + 1, len(before), before),
                        )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        log.warning(
            "the checkout moved: MLflow artifact locations in %s now point into %s (were %s)",
            db.name,
            root,
            ", ".join(map(str, moved)),
        )
    _DONE.add((uri, str(root)))
    return moved

"""Anonymous demo analytics in SQLite (stdlib): page views, game sessions, model downloads.

No IP address, cookie or user agent is stored: a row is the event's own fields and the server's time. The
database runs in WAL mode (readers never block the writer) with a busy timeout, and every call opens its own
connection, so concurrent requests in FastAPI's thread pool each write their row and none is lost.

Events are validated by the pydantic models below (bounded numbers, short strings, games of
:data:`~thrust_cli.web.GAMES`) before they reach SQL; every statement uses parameters.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from thrust_cli.web import GAMES

BUSY_TIMEOUT_MS = 30_000
TOP_N = 200  # the summary lists at most this many pages / models (clients choose page names)
Game = Literal["cartpole", "snake", "asteroids"]  # = GAMES, spelled out for the type checker
ModelId = Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,200}$")]

assert get_args(Game) == GAMES, "analytics.Game must list thrust_cli.web.GAMES"

# a visit's reports share its session id; a report without one is a session of its own
SESSION_KEY = "COALESCE(session, 'row-' || id)"

SCHEMA = """
CREATE TABLE IF NOT EXISTS page_views (id INTEGER PRIMARY KEY, ts REAL NOT NULL, page TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS game_sessions (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, game TEXT NOT NULL, agents INTEGER NOT NULL, seconds REAL NOT NULL,
    episodes INTEGER NOT NULL, mean_fps REAL NOT NULL, policy TEXT NOT NULL, mean_return REAL, model TEXT,
    session TEXT
);
CREATE TABLE IF NOT EXISTS downloads (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, model TEXT NOT NULL, format TEXT NOT NULL, source TEXT NOT NULL
);
"""


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PageView(_Event):
    """A page of the site was opened."""

    type: Literal["page_view"]
    page: str = Field(pattern=r"^/[A-Za-z0-9/_.~%-]{0,199}$", description="The page's path, e.g. /play/snake.")


class GameSession(_Event):
    """Play in the browser since the page's previous report (sent every 30 s and on leaving the page)."""

    type: Literal["game_session"]
    game: Game
    agents: int = Field(ge=1, le=65536)
    seconds: float = Field(ge=0, le=1e6)
    episodes: int = Field(ge=0, le=10**9)
    mean_fps: float = Field(ge=0, le=1000)
    policy: Literal["trained", "random"]
    mean_return: float | None = Field(default=None, ge=-1e9, le=1e9)
    model: ModelId | None = Field(default=None, description="The model id played, when a trained policy.")
    session: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="A random id the page draws once per visit: its reports (every 30 s, on leaving) are one session.",
    )


class Download(_Event):
    """The page reports that a policy file was downloaded (counted apart from the files the server sent)."""

    type: Literal["download"]
    model: ModelId
    format: Literal["safetensors", "onnx"]


Event = Annotated[PageView | GameSession | Download, Field(discriminator="type")]


class Analytics:
    """The analytics database at ``path`` (created with its tables on first use).

    Raises:
        sqlite3.Error: (from the constructor) the file cannot be opened or is not a database.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(game_sessions)")}
            if "session" not in columns:  # a database written before game sessions carried an id
                db.execute("ALTER TABLE game_sessions ADD COLUMN session TEXT")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across crashes of the process, not the OS
            yield db
        finally:
            db.close()

    def record(self, event: PageView | GameSession | Download, source: str = "client") -> None:
        """Store one validated event (a download reported by the page has ``source`` client)."""
        now = time.time()
        with self._connect() as db:
            if isinstance(event, PageView):
                db.execute("INSERT INTO page_views (ts, page) VALUES (?, ?)", (now, event.page))
            elif isinstance(event, GameSession):
                db.execute(
                    "INSERT INTO game_sessions (ts, game, agents, seconds, episodes, mean_fps, policy, mean_return,"
                    " model, session) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        now,
                        event.game,
                        event.agents,
                        event.seconds,
                        event.episodes,
                        event.mean_fps,
                        event.policy,
                        event.mean_return,
                        event.model,
                        event.session,
                    ),
                )
            else:
                self.record_download(event.model, event.format, source, db)

    def record_download(
        self, model: str, fmt: str, source: str = "server", db: sqlite3.Connection | None = None
    ) -> None:
        """A model file served (``source`` server) or a download the page reported (client)."""
        if db is None:
            with self._connect() as own:
                self.record_download(model, fmt, source, own)
            return
        db.execute(
            "INSERT INTO downloads (ts, model, format, source) VALUES (?, ?, ?, ?)", (time.time(), model, fmt, source)
        )

    def summary(self) -> dict[str, Any]:
        """Totals for ``GET /api/analytics``.

        ``downloads`` counts the files the server sent (each GET of a policy file); downloads the page reports
        itself are counted apart in ``downloads.client_reported`` so a click is not counted twice.
        """
        with self._connect() as db:
            db.execute("BEGIN")  # one snapshot for every figure
            try:
                return self._summary(db)
            finally:
                db.execute("COMMIT")

    def _summary(self, db: sqlite3.Connection) -> dict[str, Any]:
        (views,) = db.execute("SELECT COUNT(*) FROM page_views").fetchone()
        by_page = db.execute(
            "SELECT page, COUNT(*) AS n FROM page_views GROUP BY page ORDER BY n DESC, page LIMIT ?", (TOP_N,)
        ).fetchall()
        (sessions,) = db.execute(f"SELECT COUNT(DISTINCT {SESSION_KEY}) FROM game_sessions").fetchone()
        by_game = {
            game: {
                "sessions": n,
                "agents_mean": agents,
                "seconds_total": seconds,
                "episodes_total": episodes,
                "mean_fps": fps,
            }
            for game, n, agents, seconds, episodes, fps in db.execute(
                f"SELECT game, COUNT(DISTINCT {SESSION_KEY}), AVG(agents), SUM(seconds), SUM(episodes), AVG(mean_fps)"
                " FROM game_sessions GROUP BY game ORDER BY game"
            )
        }
        (served,) = db.execute("SELECT COUNT(*) FROM downloads WHERE source = 'server'").fetchone()
        (reported,) = db.execute("SELECT COUNT(*) FROM downloads WHERE source != 'server'").fetchone()
        by_model = db.execute(
            "SELECT model, COUNT(*) AS n FROM downloads WHERE source = 'server' GROUP BY model"
            " ORDER BY n DESC, model LIMIT ?",
            (TOP_N,),
        ).fetchall()
        by_format = db.execute(
            "SELECT format, COUNT(*) FROM downloads WHERE source = 'server' GROUP BY format ORDER BY format"
        ).fetchall()
        return {
            "page_views": {"total": views, "by_page": dict(by_page)},
            "game_sessions": {"total": sessions, "by_game": by_game},
            "downloads": {
                "total": served,
                "by_model": dict(by_model),
                "by_format": dict(by_format),
                "client_reported": reported,
            },
        }

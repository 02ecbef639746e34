"""The read tables' SQL: their columns, their upgrade in place, and a batch's set-based writes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg.sql import SQL, Composable, Composed, Identifier, Literal

from ledger.domain import Outcome, Position
from projections.fold import Closed, Key, Opened, PlacedOrder, decisions, fold

UNIT_SEPARATOR = "\x1f"  # joins user names for one array column; never in a valid name

CREATE = (
    "CREATE TABLE IF NOT EXISTS {orders} ("
    " sequence bigint PRIMARY KEY, order_id text NOT NULL UNIQUE,"
    " strategy text NOT NULL, instrument text NOT NULL, position text NOT NULL,"
    " received_at timestamptz NOT NULL, response text NOT NULL,"
    " accepted_for jsonb NOT NULL, rejected_for jsonb NOT NULL, reason text,"
    " users text[] NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {positions} ("
    " user_name text NOT NULL, strategy text NOT NULL, instrument text NOT NULL,"
    " order_id text NOT NULL, opened_at timestamptz NOT NULL,"
    " sequence bigint NOT NULL, PRIMARY KEY (user_name, strategy, instrument))",
    "CREATE TABLE IF NOT EXISTS {trades} ("
    " id bigserial PRIMARY KEY, user_name text NOT NULL, strategy text NOT NULL,"
    " instrument text NOT NULL, buy_order_id text NOT NULL,"
    " sell_order_id text NOT NULL, opened_at timestamptz NOT NULL,"
    " closed_at timestamptz NOT NULL, buy_sequence bigint NOT NULL,"
    " sell_sequence bigint NOT NULL)",
    # Quantities and prices (issue 14). Only ever added here, after the tables, so a new store
    # and an upgraded one have the same columns in the same order; rows from before read as
    # quantity 1 and unknown prices. Exact NUMERIC throughout (an order's price is kept as the
    # text it was answered with: the log is the answers). `ledger replay` fills them in.
    "ALTER TABLE {orders} ADD COLUMN IF NOT EXISTS quantity bigint NOT NULL DEFAULT 1,"
    " ADD COLUMN IF NOT EXISTS price text",
    "ALTER TABLE {positions} ADD COLUMN IF NOT EXISTS quantity numeric NOT NULL DEFAULT 1,"
    " ADD COLUMN IF NOT EXISTS entry_price numeric",
    "ALTER TABLE {trades} ADD COLUMN IF NOT EXISTS quantity numeric NOT NULL DEFAULT 1,"
    " ADD COLUMN IF NOT EXISTS entry_price numeric, ADD COLUMN IF NOT EXISTS exit_price numeric,"
    # The one SQL statement of the P&L rule (projections/fold.py has the same): null when a
    # price is unknown.
    " ADD COLUMN IF NOT EXISTS realised_pnl numeric"
    " GENERATED ALWAYS AS ((exit_price - entry_price) * quantity) STORED",
)

# The indexes only reads use (by name). A replay drops them and builds each once at its end:
# keeping them up to date row by row cost it a fifth of its time.
READ_INDEXES = {
    "view_orders_strategy": "CREATE INDEX IF NOT EXISTS {name} ON {orders} (strategy, sequence)",
    "view_orders_instr": "CREATE INDEX IF NOT EXISTS {name} ON {orders} (instrument, sequence)",
    "view_orders_users": "CREATE INDEX IF NOT EXISTS {name} ON {orders} USING gin (users)",
    "view_trades_user": "CREATE INDEX IF NOT EXISTS {name} ON {trades} (user_name, id)",
    # Reads as of a past sequence take the trades closed after it. Trades are appended in
    # sequence order, so a BRIN index (a summary per range of pages, summarised in the
    # background) finds them: a B-tree would cost the projection a third index entry per trade.
    "view_trades_sold": "CREATE INDEX IF NOT EXISTS {name} ON {trades} USING brin"
    " (sell_sequence) WITH (autosummarize = on)",
}

# Set-based statements: a batch of any size costs the same few round trips. Each column
# travels as one text, its values joined by COLUMN_SEPARATOR (NULL written as NULL_MARK), and
# is split by string_to_array: psycopg dumps a list parameter element by element in Python,
# which cost the projection more CPU than all its folding. Names cannot hold control
# characters (ledger.names), JSON texts escape them, the other values are numbers and times.
COLUMN_SEPARATOR = "\x1e"
NULL_MARK = "\x1d"


# A column parameter, as an array of each type the statements name as {bigint}, {text}...
COLUMNS = {
    kind: SQL("string_to_array(%s, chr(30), chr(29))::{0}[]").format(SQL(kind))
    for kind in ("bigint", "text", "timestamptz", "numeric")
}


INSERT_ORDERS = (
    "INSERT INTO {orders} (sequence, order_id, strategy, instrument, position, received_at,"
    " response, accepted_for, rejected_for, reason, users, quantity, price)"
    " SELECT s, o, st, i, p, r, resp, a::jsonb, rj::jsonb, re,"
    # One order's users are joined by UNIT_SEPARATOR; an order for nobody has none (and a
    # column of one empty text splits into no element at all: unnest pads it with NULL).
    " coalesce(string_to_array(u, chr(31)), '{{}}'), q, pr"
    " FROM unnest({bigint}, {text}, {text}, {text}, {text},"
    " {timestamptz}, {text}, {text}, {text}, {text},"
    " {text}, {bigint}, {text})"
    " AS t(s, o, st, i, p, r, resp, a, rj, re, u, q, pr)"
)
# Positions and trades travel as runs: the users of one order that share every other value
# (_Columns, below), expanded here into one row per user. Each shared value is parsed
# once per run: PostgreSQL's text-to-timestamptz and numeric parsing cost the projection more
# than a third of its database CPU per 21-user order when every row carried them.
RUN_USERS = SQL(
    "CROSS JOIN LATERAL unnest(string_to_array(r.users, chr(31))) WITH ORDINALITY AS u(u, k)"
)
# A batch's trades, in fold order. A trade whose BUY came before the batch has no BUY
# columns: its open position is taken out of the table and completes it. Trade ids (the trades
# pages' cursor) follow the last one stored, not the column's sequence: a batch lost in a crash
# of PostgreSQL (its commit does not wait for the disk, see views.py) is projected again with
# the same ids, where the sequence, logged ahead of use, would have jumped past them.
CLOSE_POSITIONS = (
    "WITH t AS MATERIALIZED (SELECT u.u, r.s, r.i, r.b, r.x, r.o, r.c, r.bs, r.ss, r.q, r.ep,"
    " r.xp, r.n, u.k FROM unnest({text}, {text}, {text},"
    " {text}, {text}, {timestamptz}, {timestamptz}, {bigint},"
    " {bigint}, {numeric}, {numeric}, {numeric})"
    " WITH ORDINALITY AS r(users, s, i, b, x, o, c, bs, ss, q, ep, xp, n) {run_users}),"
    " gone AS (DELETE FROM {positions} AS p USING t WHERE t.b IS NULL AND p.user_name = t.u"
    " AND p.strategy = t.s AND p.instrument = t.i"
    " RETURNING p.user_name, p.strategy, p.instrument, p.order_id, p.opened_at,"
    " p.sequence, p.quantity, p.entry_price)"
    " INSERT INTO {trades} (id, user_name, strategy, instrument, buy_order_id, sell_order_id,"
    " opened_at, closed_at, buy_sequence, sell_sequence, quantity, entry_price, exit_price)"
    " SELECT (SELECT coalesce(max(id), 0) FROM {trades}) + row_number() OVER (ORDER BY t.n, t.k),"
    " t.u, t.s, t.i, coalesce(t.b, g.order_id), t.x, coalesce(t.o, g.opened_at),"
    " t.c, coalesce(t.bs, g.sequence), t.ss,"
    " CASE WHEN t.b IS NULL THEN g.quantity ELSE t.q END,"
    " CASE WHEN t.b IS NULL THEN g.entry_price ELSE t.ep END, t.xp"
    " FROM t LEFT JOIN gone AS g ON t.b IS NULL"
    " AND g.user_name = t.u AND g.strategy = t.s AND g.instrument = t.i ORDER BY t.n, t.k"
)
OPEN_POSITIONS = (
    "INSERT INTO {positions} (user_name, strategy, instrument, order_id, opened_at, sequence,"
    " quantity, entry_price) SELECT u.u, r.s, r.i, r.o, r.at, r.seq, r.q, r.p"
    " FROM unnest({text}, {text}, {text}, {text}, {timestamptz}, {bigint}, {numeric},"
    " {numeric}) AS r(users, s, i, o, at, seq, q, p) {run_users}"
)


def _text(value: Any) -> str:
    """One value of a column parameter."""
    if type(value) is str:
        return value
    if value is None:
        return NULL_MARK
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # an int or an exact Decimal


def _joined(values: Iterable[Any]) -> str:
    """A column parameter: the values' texts joined."""
    return COLUMN_SEPARATOR.join(map(_text, values))


def statements(tables: dict[str, Composable], *texts: str) -> list[Composed]:
    """The statements with the schema's table names and column parameters filled in."""
    return [SQL(text).format(**tables, **COLUMNS, run_users=RUN_USERS) for text in texts]


# A batch's writes and its tracking record in one call, one round trip and one transaction,
# as the writers' append: seven (BEGIN, SET, three writes, the tracking record, COMMIT) cost a
# one-order batch ~0.6 ms of the projector's CPU and ~0.7 of PostgreSQL's, one call 0.2 and
# 0.4. Live 21 x 4 (~65 batches a second), 5 alternating A/B pairs: the projection's CPU with
# its PostgreSQL work per order -7% against the writer's in the same run; `ledger replay`
# +12% (4 pairs). Each column is an argument of its own: as elements of one text[] per write,
# a replay's columns (megabytes each) were copied twice more, and it was ~6% slower. The tracking
# record is eventsourcing's single-row upsert; one that would not move forward is refused
# (TRACKING_STALE). Its transaction does not wait for the disk: see LedgerView.write.
APPLY_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}({arguments}, p_application text, p_position bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE tracked bigint;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  IF p_trades_1 IS NOT NULL THEN {close}; END IF;
  IF p_positions_1 IS NOT NULL THEN {open}; END IF;
  IF p_orders_1 IS NOT NULL THEN {insert}; END IF;
  INSERT INTO {tracking} VALUES (p_application, p_position)
    ON CONFLICT (application_name) DO UPDATE SET notification_id = p_position
    WHERE {tracking}.notification_id < p_position RETURNING notification_id INTO tracked;
  IF tracked IS NULL THEN
    RAISE EXCEPTION 'tracking % at % would not move forward', p_application, p_position
      USING ERRCODE = {stale};
  END IF;
END $$
"""
TRACKING_STALE = "LDTRK"  # the SQLSTATE of a tracking record that would not move forward
# The column parameters of each write, in the function's order.
WIDTHS = {"trades": 12, "positions": 8, "orders": 13}


def _in_function(statement: Composed, name: str) -> SQL:
    """A statement with its column parameters, in order, read from arguments p_<name>_<n>."""
    parts = statement.as_string(None).split("%s")
    assert len(parts) - 1 == WIDTHS[name], name
    numbered = [f"{part}p_{name}_{n}" for n, part in enumerate(parts[:-1], 1)]
    return SQL("".join([*numbered, parts[-1]]))


def apply_function(
    tables: dict[str, Composable], function: Composable, tracking: Composable
) -> tuple[Composed, Composed]:
    """The CREATE statement of the batch function (APPLY_FUNCTION), and its call: the writes'
    column parameters (WIDTHS, NULL for a write with no rows), the application name and the
    tracking position."""
    close, open_, insert = statements(tables, CLOSE_POSITIONS, OPEN_POSITIONS, INSERT_ORDERS)
    arguments = [
        f"p_{name}_{n} text" for name, width in WIDTHS.items() for n in range(1, width + 1)
    ]
    create = SQL(APPLY_FUNCTION).format(
        function=function,
        arguments=SQL(", ".join(arguments)),
        close=_in_function(close, "trades"),
        open=_in_function(open_, "positions"),
        insert=_in_function(insert, "orders"),
        tracking=tracking,
        stale=Literal(TRACKING_STALE),
    )
    call = SQL("SELECT {0}({1})").format(function, SQL(", ".join(["%s"] * (len(arguments) + 2))))
    return create, call


def index_statements(tables: dict[str, Composable]) -> list[Composed]:
    """The read indexes' CREATE statements."""
    return [
        SQL(text).format(name=Identifier(name), **tables) for name, text in READ_INDEXES.items()
    ]


def drop_index_statements(schema: str) -> list[Composed]:
    """The read indexes' DROP statements."""
    return [
        SQL("DROP INDEX IF EXISTS {0}.{1}").format(Identifier(schema), Identifier(name))
        for name in READ_INDEXES
    ]


class _Columns:
    """Column parameters of runs: the users of one order that share every other value.

    An order books the same position for all its users but those with a multiplier: a run
    carries its users' names joined by UNIT_SEPARATOR and every other value once (row by
    row, turning values into text was a third of the projector's CPU under a 21-user fan-out).
    """

    def __init__(self, width: int) -> None:
        self.parts: list[list[str]] = [[] for _ in range(width)]

    def add(self, users: list[str], shared: Sequence[Any]) -> None:
        """A run: `users`, every other column `shared`."""
        parts = self.parts
        parts[0].append(UNIT_SEPARATOR.join(users))
        for column, value in enumerate(shared, 1):
            parts[column].append(_text(value))

    def texts(self) -> list[str] | None:
        """The column parameters, or None for no rows."""
        if not self.parts[0]:
            return None
        return [COLUMN_SEPARATOR.join(part) for part in self.parts]


def _runs(rows: Iterable[tuple[str, Any, Any]]) -> Iterator[tuple[list[str], Any]]:
    """(user, run key, row) triples, consecutive ones with equal keys as (users, first row)."""
    users: list[str] = []
    key: Any = None
    first: Any = None
    for user, row_key, row in rows:
        if users and row_key != key:
            yield users, first
            users = []
        if not users:
            key, first = row_key, row
        users.append(user)
    if users:
        yield users, first


# Stands for a position opened before the batch: the table holds its BUY.
_BEFORE = Opened("", datetime.min.replace(tzinfo=UTC), 0)


def _trade(c: Closed) -> tuple[Any, ...]:
    """A trade's columns but its user; one whose BUY came before the batch leaves the BUY's to
    the table."""
    strategy, instrument, sell = c.key[1], c.key[2], c.sell
    if c.buy is _BEFORE:
        return (strategy, instrument, None, sell.order_id, None, sell.at, None, sell.sequence,
                None, None, sell.price)  # fmt: skip
    buy = c.buy
    return (strategy, instrument, buy.order_id, sell.order_id, buy.at, sell.at, buy.sequence,
            sell.sequence, c.quantity, buy.price, sell.price)  # fmt: skip


def _trades(closed: list[Closed]) -> list[str] | None:
    """The trades' columns, in fold order: the closing statement numbers them in that order."""
    columns = _Columns(WIDTHS["trades"])
    for users, c in _runs((c.key[0], (id(c.buy), id(c.sell)), c) for c in closed):
        columns.add(users, _trade(c))
    return columns.texts()


def _positions(open_: dict[Key, Opened]) -> list[str] | None:
    """The open positions' columns."""
    columns = _Columns(WIDTHS["positions"])
    runs = _runs((user, id(o), (s, i, o)) for (user, s, i), o in open_.items())
    for users, (strategy, instrument, o) in runs:
        columns.add(
            users, (strategy, instrument, o.order_id, o.at, o.sequence, o.quantity, o.price)
        )
    return columns.texts()


@dataclass(frozen=True, slots=True)
class Writes:
    """A batch's statement parameters, folded and encoded before its transaction opens."""

    trades: list[str] | None
    positions: list[str] | None
    orders: tuple[str, ...]
    decisions: int  # users the orders were decided for: what the batch costs

    @classmethod
    def of(cls, orders: Sequence[PlacedOrder]) -> Writes:
        """Fold the orders in sequence order and encode every row they write."""
        # A position the batch closes before opening it was opened earlier, and is in the
        # table: it enters the fold as _BEFORE and the closing statement fetches its BUY.
        first: dict[Key, bool] = {}
        for order in orders:
            buy = order.position == Position.BUY
            for user in order.accepted_for:
                first.setdefault((user, order.strategy, order.instrument), buy)
        open_: dict[Key, Opened] = {key: _BEFORE for key, buy in first.items() if not buy}
        closed = fold(orders, open_)
        return cls(
            _trades(closed),
            _positions(open_),
            (
                _joined(o.sequence for o in orders),
                COLUMN_SEPARATOR.join([o.order_id for o in orders]),
                COLUMN_SEPARATOR.join([o.strategy for o in orders]),
                COLUMN_SEPARATOR.join([o.instrument for o in orders]),
                _joined(o.position for o in orders),
                _joined(o.received_at for o in orders),
                COLUMN_SEPARATOR.join([Outcome.of(o.accepted_for).value for o in orders]),
                COLUMN_SEPARATOR.join([orjson.dumps(o.accepted_for).decode() for o in orders]),
                COLUMN_SEPARATOR.join([orjson.dumps(o.rejected_for).decode() for o in orders]),
                _joined(o.reason for o in orders),
                COLUMN_SEPARATOR.join(
                    [
                        UNIT_SEPARATOR.join(o.accepted_for + [r["user"] for r in o.rejected_for])
                        for o in orders
                    ]
                ),
                _joined(o.quantity for o in orders),
                _joined(o.price for o in orders),
            ),
            sum(map(decisions, orders)),
        )

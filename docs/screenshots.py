"""Take the README's screenshots from a running portal, in English and Danish.

Usage (with the demo running, `./portal run`, and the password it printed):

    .venv/bin/python docs/screenshots.py --password PASSWORD [--url http://127.0.0.1:8000]

Needs the development requirements (Playwright) and Debian's Chromium at /usr/bin/chromium.
Writes docs/screenshots/<page>-<language>.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).parent / "screenshots"
LANGUAGES = ("en", "da")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--mailbox", default="alice@demo.example", help="The mailbox whose page is shown.")
    args = parser.parse_args()
    HERE.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        for language in LANGUAGES:
            context = browser.new_context(viewport={"width": 1280, "height": 800}, locale=language)
            page = context.new_page()
            page.goto(f"{args.url}/login/")
            page.locator("#id_username").fill(args.user)
            page.locator("#id_password").fill(args.password)
            page.locator("form [type=submit]").first.click()
            page.wait_for_url(f"{args.url}/dashboard/")
            page.screenshot(path=HERE / f"dashboard-{language}.png", full_page=True)
            page.goto(f"{args.url}/mailboxes/")
            page.screenshot(path=HERE / f"mailboxes-{language}.png", full_page=True)
            page.get_by_role("link", name=args.mailbox, exact=True).first.click()
            page.wait_for_load_state("networkidle")
            page.screenshot(path=HERE / f"mailbox-{language}.png", full_page=True)
            for name, path in (("monitoring", "/monitoring/"), ("emails", "/crm/emails/"), ("audit", "/audit/")):
                page.goto(f"{args.url}{path}")
                page.screenshot(path=HERE / f"{name}-{language}.png", full_page=True)
            context.close()
        browser.close()
    print(f"Screenshots written to {HERE}")


if __name__ == "__main__":
    main()

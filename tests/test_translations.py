"""The Danish catalogue: complete, well-formed, compiled, and used by the pages.

1. Every entry of locale/da/LC_MESSAGES/django.po is translated, not fuzzy, and keeps the
   msgid's placeholders (%(name)s, %s, {name}).
2. Nothing marked for translation in the source is missing: makemessages runs on a copy of
   the source, and every string it extracts must be translated in the committed catalogue.
3. The committed django.mo says what the .po says.
4. Pages come in Danish for Accept-Language: da and after choosing Danish in the language
   chooser, and in English otherwise.
"""

from __future__ import annotations

import ast
import gettext
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation

BASE_DIR = Path(settings.BASE_DIR)
LOCALE_DIR = BASE_DIR / "locale"
PO_PATH = LOCALE_DIR / "da" / "LC_MESSAGES" / "django.po"
MO_PATH = LOCALE_DIR / "da" / "LC_MESSAGES" / "django.mo"

# The same flags the catalogue is made with (README of locale/: how to update it).
IGNORED = (".venv", "ewsim", "tests", "bench", "staticfiles")
MAKEMESSAGES = ["makemessages", "-l", "da", "--no-location", *(f"--ignore={name}" for name in IGNORED)]
# The files makemessages reads for the "django" domain.
SOURCE_SUFFIXES = {".py", ".html", ".txt"}

GETTEXT_TOOLS = ("xgettext", "msguniq", "msgmerge", "msgattrib", "msgfmt")


# A small .po reader ------------------------------------------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False

    @property
    def key(self) -> tuple[str | None, str, str | None]:
        return (self.msgctxt, self.msgid, self.msgid_plural)

    @property
    def is_translated(self) -> bool:
        wanted = range(2) if self.msgid_plural is not None else range(1)
        return "fuzzy" not in self.flags and all(self.msgstr.get(n) for n in wanted)

    def __str__(self) -> str:
        return repr(self.msgid) if self.msgctxt is None else f"{self.msgctxt!r}: {self.msgid!r}"


KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*")$')


def read_po(path: Path) -> tuple[Entry, list[Entry]]:
    """The header entry and the other entries of a .po file (obsolete ones marked)."""
    entries: list[Entry] = []
    current = Entry()
    target: tuple[str, int | None] | None = None
    started = False

    def finish() -> None:
        nonlocal current, target, started
        if started:
            entries.append(current)
        current, target, started = Entry(), None, False

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#~"):
            current.obsolete = True
            line = line[2:].strip()
            if not line or line.startswith("|"):
                continue
        elif line.startswith("#,"):
            if started and target is not None and target[0] == "msgstr":
                finish()
            current.flags |= {flag.strip() for flag in line[2:].split(",") if flag.strip()}
            continue
        elif line.startswith("#"):
            continue
        match = KEYWORD.match(line)
        if match:
            keyword, index, text = match.groups()
            if keyword in ("msgctxt", "msgid") and target is not None and target[0] == "msgstr":
                finish()  # an entry that follows without a blank line
            started = True
            value = ast.literal_eval(text)
            if keyword.startswith("msgstr"):
                target = ("msgstr", int(index) if index is not None else 0)
                current.msgstr[target[1]] = value
            else:
                target = (keyword, None)
                setattr(current, keyword, value)
        elif line.startswith('"') and target is not None:
            value = ast.literal_eval(line)
            if target[0] == "msgstr":
                current.msgstr[target[1]] += value
            else:
                setattr(current, target[0], getattr(current, target[0]) + value)
        else:
            raise AssertionError(f"{path}:{number}: cannot read {raw!r}")
    finish()
    headers = [e for e in entries if e.msgid == "" and e.msgctxt is None and not e.obsolete]
    assert len(headers) == 1, f"{path} has {len(headers)} header entries"
    return headers[0], [e for e in entries if e is not headers[0]]


# Placeholders ------------------------------------------------------------------------------

PERCENT = re.compile(
    r"%(?:\((?P<name>[^)]*)\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?(?P<conv>[diouxXeEfFgGcrsa%])"
)
BRACE = re.compile(r"(?<!\{)\{(\w*)(?:![rsa])?(?::[^{}]*)?\}(?!\})")


def percent_placeholders(text: str) -> Counter[str]:
    """%(name)s / %s placeholders, with their conversion; %% is text, not a placeholder."""
    found: Counter[str] = Counter()
    for m in PERCENT.finditer(text):
        if m["conv"] == "%":
            continue
        found[f"%({m['name']}){m['conv']}" if m["name"] is not None else f"%{m['conv']}"] += 1
    return found


def brace_placeholders(text: str) -> set[str]:
    return {f"{{{name}}}" for name in BRACE.findall(text)}


def placeholder_problems(entry: Entry) -> list[str]:
    problems = []
    sources = {0: entry.msgid}
    if entry.msgid_plural is not None:
        sources = {n: entry.msgid if n == 0 else entry.msgid_plural for n in entry.msgstr}
    for n, source in sources.items():
        translated = entry.msgstr.get(n, "")
        if "python-format" in entry.flags:
            want, got = percent_placeholders(source), percent_placeholders(translated)
            if set(want) != set(got):
                problems.append(f"msgstr[{n}] has %-placeholders {sorted(got)}, the msgid {sorted(want)}")
        want_b, got_b = brace_placeholders(source), brace_placeholders(translated)
        if want_b != got_b:
            problems.append(f"msgstr[{n}] has {{}}-placeholders {sorted(got_b)}, the msgid {sorted(want_b)}")
    return problems


# 1. Every entry translated, with its placeholders ------------------------------------------


def test_placeholder_helpers_see_the_differences() -> None:
    """The checks below are only as good as these helpers: they must notice a lost placeholder."""
    ok = Entry(msgid="%(n)d of %(total)s {x}", msgstr={0: "%(n)d af %(total)s {x}"}, flags={"python-format"})
    assert placeholder_problems(ok) == []
    lost = Entry(msgid="%(n)d of %(total)s", msgstr={0: "%(n)d af %(totalt)s"}, flags={"python-format"})
    assert placeholder_problems(lost)
    brace = Entry(msgid="Hello {name}", msgstr={0: "Hej {navn}"})
    assert placeholder_problems(brace)
    assert not percent_placeholders("100%% done")
    fuzzy = Entry(msgid="Save", msgstr={0: "Gem"}, flags={"fuzzy"})
    assert not fuzzy.is_translated
    plural = Entry(msgid="%(n)s mailbox", msgid_plural="%(n)s mailboxes", msgstr={0: "%(n)s postkasse", 1: ""})
    assert not plural.is_translated


def test_catalogue_header_is_danish_with_two_plural_forms() -> None:
    header, _ = read_po(PO_PATH)
    assert "fuzzy" not in header.flags, "the header is marked fuzzy: gettext would ignore its Plural-Forms"
    text = header.msgstr[0]
    assert re.search(r"^Language: da$", text, re.M), text
    assert "Plural-Forms: nplurals=2; plural=(n != 1);" in text, text
    assert "charset=UTF-8" in text, text


def test_every_entry_is_translated_with_its_placeholders() -> None:
    _, entries = read_po(PO_PATH)
    live = [e for e in entries if not e.obsolete]
    assert len(live) > 100, f"only {len(live)} entries in {PO_PATH}"
    untranslated = [str(e) for e in live if not e.is_translated]
    assert not untranslated, f"{len(untranslated)} entries are untranslated or fuzzy:\n" + "\n".join(untranslated)
    wrong = [f"{e}: {problem}" for e in live for problem in placeholder_problems(e)]
    assert not wrong, "placeholders differ between msgid and msgstr:\n" + "\n".join(wrong)


# 2. Nothing marked in the source is missing --------------------------------------------------


def _copy_source(destination: Path) -> None:
    """The project's source files, manage.py and locale/ as makemessages sees them."""
    for directory, subdirs, files in os.walk(BASE_DIR):
        here = Path(directory)
        subdirs[:] = [
            d
            for d in subdirs
            if not d.startswith(".") and d not in IGNORED and d not in ("var", "node_modules", "__pycache__", "locale")
        ]
        for name in files:
            path = here / name
            if path.suffix in SOURCE_SUFFIXES:
                target = destination / path.relative_to(BASE_DIR)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    shutil.copytree(LOCALE_DIR, destination / "locale")


def test_every_marked_string_is_in_the_catalogue(tmp_path: Path) -> None:
    missing_tools = [tool for tool in GETTEXT_TOOLS if shutil.which(tool) is None]
    if missing_tools:
        pytest.skip(f"GNU gettext tools are not installed ({', '.join(missing_tools)}): apt-get install gettext")
    copy = tmp_path / "source"
    _copy_source(copy)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    env.update(DEBUG="true", VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="crmsync_portal.settings")
    done = subprocess.run(
        [sys.executable, "manage.py", *MAKEMESSAGES],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"makemessages failed:\n{done.stdout}\n{done.stderr}"

    _, extracted = read_po(copy / "locale" / "da" / "LC_MESSAGES" / "django.po")
    _, committed = read_po(PO_PATH)
    translated = {e.key for e in committed if not e.obsolete and e.is_translated}
    wanted = [e for e in extracted if not e.obsolete]
    assert len(wanted) > 100, f"makemessages found only {len(wanted)} strings: is the copy complete?"
    missing = [str(e) for e in wanted if e.key not in translated]
    assert not missing, (
        f"{len(missing)} strings marked for translation are not translated in {PO_PATH.relative_to(BASE_DIR)} "
        "(run makemessages, translate them, then compilemessages):\n" + "\n".join(missing)
    )


# 3. The compiled catalogue says what the .po says ---------------------------------------------


def test_compiled_catalogue_is_up_to_date(tmp_path: Path) -> None:
    if shutil.which("msgfmt") is None:
        pytest.skip("GNU gettext's msgfmt is not installed: apt-get install gettext")
    assert MO_PATH.exists(), f"{MO_PATH.relative_to(BASE_DIR)} is missing: run compilemessages"
    fresh = tmp_path / "django.mo"
    done = subprocess.run(["msgfmt", "--check", "-o", str(fresh), str(PO_PATH)], capture_output=True, text=True)
    assert done.returncode == 0, f"msgfmt --check refused the catalogue:\n{done.stderr}"
    with MO_PATH.open("rb") as committed_file, fresh.open("rb") as fresh_file:
        committed = gettext.GNUTranslations(committed_file)
        expected = gettext.GNUTranslations(fresh_file)
    have, want = committed._catalog, expected._catalog  # type: ignore[attr-defined]
    stale = {key for key in set(have) | set(want) if have.get(key) != want.get(key)}
    assert not stale, (
        f"{MO_PATH.relative_to(BASE_DIR)} differs from the .po in {len(stale)} messages (run compilemessages): "
        + ", ".join(sorted(repr(k) for k in stale)[:20])
    )


# 4. The pages speak the chosen language ------------------------------------------------------


@pytest.fixture
def keep_language() -> Iterator[None]:
    """A request activates its language for the thread; other tests expect the default back."""
    with translation.override(settings.LANGUAGE_CODE):
        yield


@pytest.mark.usefixtures("keep_language")
def test_accept_language_da_gives_danish_and_en_english() -> None:
    client = Client()
    danish = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="da")
    assert danish.status_code == 200
    page = danish.content.decode()
    assert '<html lang="da">' in page
    assert "Log på" in page
    assert "Sign in" not in page

    english = Client().get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en")
    page = english.content.decode()
    assert '<html lang="en">' in page
    assert "Sign in" in page
    assert "Log på" not in page


@pytest.mark.usefixtures("keep_language")
def test_language_chooser_switches_to_danish_and_back() -> None:
    client = Client()
    page = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Sign in" in page

    chosen = client.post(reverse("set_language"), {"language": "da", "next": reverse("login")})
    assert chosen.status_code == 302
    assert chosen.cookies[settings.LANGUAGE_COOKIE_NAME].value == "da"
    # The choice wins over what the browser asks for.
    page = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="da">' in page
    assert "Log på" in page

    client.post(reverse("set_language"), {"language": "en", "next": reverse("login")})
    page = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="da").content.decode()
    assert '<html lang="en">' in page
    assert "Sign in" in page


def test_a_stored_test_result_reads_in_the_readers_language() -> None:
    from django.template import Context, Template
    from django.utils import translation

    template = Template("{% load portal %}{{ message|stored_text }}|{{ other|stored_text }}")
    with translation.override("da"):
        html = template.render(Context({"message": "Passed.", "other": "Server said: 42"}))
    assert html == "Bestået.|Server said: 42"

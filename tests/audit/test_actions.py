"""Every action the portal records has a label; unknown codes still read as words."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.utils import translation

from audit.actions import ACTIONS, action_label, choices, codes_matching, humanize
from audit.mixins import AuditedModel
from crmsync_portal.lib.fields import encrypted_fields

SKIPPED_DIRS = {"tests", "migrations", "node_modules", "var", "static", "templates", "locale"}
CODE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
AUDIT_CALLS = {"record", "save_audited", "delete_audited"}
# What AuditedModel and rotate_keys append to an audit name in f-strings.
DERIVED_SUFFIXES = {"created", "updated", "deleted", "secrets_reencrypted"}


def source_files() -> list[Path]:
    """The portal's Python files, but for tests, migrations and the label list itself."""
    root = Path(settings.BASE_DIR)
    return [
        path
        for path in root.rglob("*.py")
        if not any(part.startswith(".") or part in SKIPPED_DIRS for part in path.relative_to(root).parts)
        and path != root / "audit" / "actions.py"
    ]


def audited_models() -> list[type[AuditedModel]]:
    return [m for m in apps.get_models() if issubclass(m, AuditedModel) and m.audit_name]


def audit_prefixes() -> set[str]:
    """The first part of an action: an audit name or a model's name ("user.locked_out")."""
    return {m.audit_name for m in audited_models()} | {m._meta.model_name for m in apps.get_models()}


def call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def recorded_codes() -> dict[str, str]:
    """Every literal action code in the source, with where it is: a dotted string starting with
    an audit or model name, or any string passed to record/save_audited or as action=."""
    prefixes = audit_prefixes()
    found: dict[str, str] = {}
    for path in source_files():
        tree = ast.parse(path.read_text(), str(path))
        in_calls = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and call_name(node) in AUDIT_CALLS:
                args = [*node.args, *(k.value for k in node.keywords)]
            elif isinstance(node, ast.Call):
                args = [k.value for k in node.keywords if k.arg == "action"]
            else:
                continue
            in_calls |= {id(a) for a in args if isinstance(a, ast.Constant)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.match(node.value)):
                continue
            if id(node) in in_calls or node.value.split(".")[0] in prefixes:
                found.setdefault(node.value, f"{path}:{node.lineno}")
    return found


def derived_suffixes() -> dict[str, str]:
    """The ".suffix" of each f-string action passed to record/save_audited (f"{name}.created")."""
    found: dict[str, str] = {}
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and call_name(node) in AUDIT_CALLS):
                continue
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                for part in ast.walk(arg):
                    if isinstance(part, ast.JoinedStr) and isinstance(part.values[-1], ast.Constant):
                        tail = str(part.values[-1].value)
                        if tail.startswith("."):
                            found.setdefault(tail[1:], f"{path}:{node.lineno}")
    return found


def test_the_scan_finds_the_actions_recorded_across_the_apps() -> None:
    found = recorded_codes()
    # One from each app that records: a guard against a scan that silently finds nothing.
    for code in ("mailbox.approved", "mailbox.sync_requested", "mailbox.deletes_confirmed", "user.locked_out"):
        assert code in found
    assert not {"crmsync_portal.settings", "favicon.ico", "home.html"} & set(found)


def test_every_action_code_in_the_source_has_a_label() -> None:
    missing = {code: where for code, where in recorded_codes().items() if code not in ACTIONS}
    assert not missing, f"Add a label to audit/actions.py ACTIONS for: {missing}"


def test_every_derived_action_form_is_known() -> None:
    unknown = {suffix: where for suffix, where in derived_suffixes().items() if suffix not in DERIVED_SUFFIXES}
    assert not unknown, f"A new derived action; label it for every model in audit/actions.py: {unknown}"


def test_every_audited_model_has_labels_for_created_updated_and_deleted() -> None:
    assert audited_models()
    missing = [
        f"{m.audit_name}.{verb}"
        for m in audited_models()
        for verb in ("created", "updated", "deleted")
        if f"{m.audit_name}.{verb}" not in ACTIONS
    ]
    assert not missing, f"Add labels to audit/actions.py ACTIONS for: {missing}"


def test_every_model_with_secrets_has_a_label_for_their_reencryption() -> None:
    names = [getattr(m, "audit_name", "") or m._meta.model_name for m in apps.get_models() if encrypted_fields(m)]
    assert names
    missing = [f"{n}.secrets_reencrypted" for n in names if f"{n}.secrets_reencrypted" not in ACTIONS]
    assert not missing, f"Add labels to audit/actions.py ACTIONS for: {missing}"


def test_a_known_code_shows_its_label() -> None:
    assert action_label("mailbox.approved") == "Email address approved"


def test_an_unknown_code_shows_in_words() -> None:
    assert action_label("system.keys_rotated") == "System keys rotated"
    assert action_label("") == ""
    assert humanize("sync_filter.copied") == "Sync filter copied"


def test_typed_words_find_the_codes_of_their_labels() -> None:
    assert "mailbox.approved" in codes_matching("approved")
    assert "mailbox.rejected" not in codes_matching("approved")
    assert codes_matching("ADDRESS APPROVED") == {"mailbox.approved"}
    assert {"mailbox.test_requested", "mailbox.tested", "mailbox.test_failed"} <= codes_matching("test & enable")
    assert codes_matching("no such words") == set()
    assert codes_matching("") == set()


def test_the_english_label_is_found_in_another_language_too() -> None:
    with translation.override("da"):
        assert "mailbox.approved" in codes_matching("approved")


def test_the_choices_are_every_action_by_label() -> None:
    listed = choices()
    assert {code for code, _label in listed} == set(ACTIONS)
    labels = [label.lower() for _code, label in listed]
    assert labels == sorted(labels)

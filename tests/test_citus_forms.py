"""The SQL of repeatable/ keeps to the forms Citus routes (docs/citus.md,
"A third try"): no subquery in an INSERT's VALUES ("could not create
distributed plan") and no function that is not immutable in an upsert's DO
UPDATE SET (refused, and with a generic plan a crash of this Citus build).
A text check of every file, so that single-node work cannot bring them back
unnoticed; tests/test_cluster.py runs the session group on a real cluster."""

from __future__ import annotations

import re

import pytest

from .conftest import ROOT

FILES = sorted((ROOT / "repeatable").glob("*.sql"))
NOT_IMMUTABLE = re.compile(
    r"\b(now|clock_timestamp|statement_timestamp|current_setting|random|gen_random_uuid)\s*\(", re.I
)


def code(path) -> str:
    """The file without its -- comments (line numbers kept)."""
    return re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))


def balanced(text: str, start: int) -> str:
    """The text from start (just after an opening parenthesis) to its closing one."""
    depth, i = 1, start
    while depth and i < len(text):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
    return text[start : i - 1]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_insert_values_holds_a_subquery(path) -> None:
    text = code(path)
    found = [
        text[: m.start()].count("\n") + 1
        for m in re.finditer(r"\bvalues\s*\(", text, re.I)
        if re.search(r"\(\s*select\b", balanced(text, m.end()), re.I)
    ]
    assert not found, f"{path.name}: a subquery in VALUES at line(s) {found}; select it into a variable first"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_upsert_sets_a_function_that_is_not_immutable(path) -> None:
    text = code(path)
    found = []
    for m in re.finditer(r"\bdo\s+update\s+set\b", text, re.I):
        end = min(i for i in (text.find(";", m.end()), text.lower().find("returning", m.end())) if i >= 0)
        if NOT_IMMUTABLE.search(text[m.end() : end]):
            found.append(text[: m.start()].count("\n") + 1)
    assert not found, (
        f"{path.name}: a function that is not immutable in DO UPDATE SET at line(s) {found};"
        " use excluded's default or a variable"
    )


VOLATILE = re.compile(r"\b(clock_timestamp|timeofday|random|gen_random_uuid|uuidv4|uuidv7|nextval)\s*\(", re.I)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_update_sets_a_volatile_function(path) -> None:
    """ "functions used in UPDATE queries on distributed tables must not be
    VOLATILE", and Citus local tables count: read the value into a variable."""
    text = code(path)
    found = []
    for m in re.finditer(r"\bupdate\s+toolsdb\.\w+(\s+as\s+\w+)?\s+set\b", text, re.I):
        rest = text[m.end() :].lower()
        end = min(i for i in (rest.find(";"), rest.find(" where "), rest.find("returning"), len(rest)) if i >= 0)
        if VOLATILE.search(rest[:end]):
            found.append(text[: m.start()].count("\n") + 1)
    assert not found, f"{path.name}: a volatile function in UPDATE ... SET at line(s) {found}; use a variable"

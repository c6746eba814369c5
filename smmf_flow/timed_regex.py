"""Regex matches with a time limit, for patterns that meet text a caller controls.

A router rule's regex (written in a flow) and a JSON schema's ``pattern`` (sent
by an HTTP caller) are matched against prompts and model answers. Python's ``re``
backtracks without bound and cannot be stopped: ``^(a|aa)+$`` takes 0.7 s on 30
a's and a ``!``, 1.6 times longer per extra ``a``, and ``(\\w+\\s?)+$`` on 12 words
and a ``!`` ran until it was killed, all the while holding the GIL: one request
would stall the event loop and every other tenant with it. The ``regex`` package
matches the same syntax and stops after ``LIMIT_S`` seconds; a match that runs out
says which pattern did.
"""

from __future__ import annotations

import regex

#: seconds one match may take; a pattern that needs longer backtracks catastrophically
LIMIT_S = 0.1


class RegexTimeout(Exception):
    """A match ran out of time (the pattern, not the machine, is at fault)."""

    def __init__(self, pattern: str) -> None:
        super().__init__(
            f"regex /{pattern}/ took more than {LIMIT_S * 1000:g} ms on this text and was "
            "stopped; it backtracks without bound (nested quantifiers such as (a+)+ or "
            "(\\w+\\s?)+): make the repeated parts unable to match the same text"
        )
        self.pattern = pattern


def check(pattern: str) -> None:
    """Raise ``ValueError`` naming the fault if ``pattern`` does not compile."""
    try:
        regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from None


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (``RegexTimeout`` if the
    answer takes longer than ``LIMIT_S``)."""
    try:
        return regex.search(pattern, text, timeout=LIMIT_S) is not None
    except TimeoutError:
        raise RegexTimeout(pattern) from None

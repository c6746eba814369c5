"""``routing.check_rule``: each condition of a rule, why it holds and why not (pure)."""

import pytest
from pydantic import ValidationError

from smmf_flow.models.types import ChatMessage, ChatRequest, ResponseFormat
from smmf_flow.scheduler.routing import When, check_rule, needs_tokens, prompt_text
from smmf_flow.timed_regex import RegexTimeout


def request(prompt: str = "hello", **fields: object) -> ChatRequest:
    return ChatRequest.of(prompt, **fields)


def check(
    when: When,
    req: ChatRequest | None = None,
    *,
    tokens: int = 10,
    window: int = 2048,
    label: str | None = None,
) -> tuple[bool, str]:
    return check_rule(when, req or request(), tokens=tokens, window=window, label=label)


def test_a_rule_without_conditions_always_holds() -> None:
    assert check(When()) == (True, "always")


@pytest.mark.parametrize(
    ("when", "tokens", "ok", "reason"),
    [
        (When(min_prompt_tokens=10), 10, True, "prompt 10 tokens >= 10"),
        (When(min_prompt_tokens=10), 9, False, "prompt 9 tokens < 10"),
        (When(max_prompt_tokens=10), 10, True, "prompt 10 tokens <= 10"),
        (When(max_prompt_tokens=10), 11, False, "prompt 11 tokens > 10"),
    ],
)
def test_prompt_length_bounds(when: When, tokens: int, ok: bool, reason: str) -> None:
    assert check(when, tokens=tokens) == (ok, reason)


def test_fits_context_counts_the_prompt_plus_max_tokens_against_the_window() -> None:
    req = request(max_tokens=56)
    assert check(When(fits_context=True), req, tokens=200, window=256) == (
        True,
        "needs 256 tokens, window 256",
    )
    assert check(When(fits_context=True), req, tokens=201, window=256) == (
        False,
        "needs 257 tokens, window 256",
    )
    assert check(When(fits_context=False), req, tokens=201, window=256) == (
        True,
        "needs 257 tokens, window 256",
    )


def test_regex_searches_the_user_messages_only() -> None:
    req = ChatRequest(
        messages=[
            ChatMessage(role="system", content="def system(): pass"),
            ChatMessage(role="user", content="what is a list?"),
        ]
    )
    assert prompt_text(req) == "what is a list?"
    assert check(When(regex=r"\bdef\b"), req) == (False, r"no match for /\bdef\b/")
    assert check(When(regex=r"\blist\b"), req) == (True, r"matches /\blist\b/")


def test_keywords_match_case_insensitively_and_name_the_first_found() -> None:
    when = When(keywords=["invoice", "refund"])
    assert check(when, request("I want a REFUND now")) == (True, "keyword 'refund'")
    assert check(when, request("hello")) == (False, "no keyword")


def test_tags_compare_request_metadata() -> None:
    when = When(tags={"tier": "gold", "lang": "en"})
    gold = request(metadata={"tier": "gold", "lang": "en", "extra": 1})
    assert check(when, gold) == (True, "tags tier='gold', lang='en'")
    assert check(when, request(metadata={"tier": "silver", "lang": "en"})) == (
        False,
        "tag tier='silver'",
    )
    assert check(when, request()) == (False, "tag tier=None")


def test_structured_looks_at_the_response_format() -> None:
    as_json = request(response_format=ResponseFormat.from_schema({"type": "object"}))
    as_text = request(response_format=ResponseFormat(type="text"))
    assert check(When(structured=True), as_json) == (True, "structured output")
    assert check(When(structured=True), as_text) == (False, "structured output not asked")
    assert check(When(structured=True), request()) == (False, "structured output not asked")
    assert check(When(structured=False), request()) == (True, "free text")
    assert check(When(structured=False), as_json) == (False, "structured output asked")


def test_label_compares_the_classifier_answer() -> None:
    assert check(When(label="code"), label="code") == (True, "classified as 'code'")
    assert check(When(label="code"), label="chat") == (False, "label 'chat'")
    assert check(When(label="code"), label=None) == (False, "label None")


def test_every_condition_must_hold_and_the_reason_lists_them_all() -> None:
    when = When(max_prompt_tokens=100, keywords=["sql"], tags={"team": "data"})
    req = request("write SQL for me", metadata={"team": "data"})
    assert check(when, req, tokens=20) == (
        True,
        "prompt 20 tokens <= 100; keyword 'sql'; tags team='data'",
    )
    assert check(when, req, tokens=200) == (False, "prompt 200 tokens > 100")
    assert check(when, request("write SQL", metadata={"team": "web"}), tokens=20) == (
        False,
        "tag team='web'",
    )


def test_only_length_conditions_need_the_prompt_tokenized() -> None:
    assert not needs_tokens(When(regex="x", keywords=["y"], tags={"a": 1}, structured=True))
    assert needs_tokens(When(min_prompt_tokens=1))
    assert needs_tokens(When(max_prompt_tokens=1))
    assert needs_tokens(When(fits_context=False))


def test_a_bad_regex_or_field_is_refused_when_the_rule_is_made() -> None:
    with pytest.raises(ValidationError, match=r"invalid regex '\('"):
        When(regex="(")
    with pytest.raises(ValidationError, match="max_prompt_token"):
        When(max_prompt_token=5)  # type: ignore[call-arg]


def test_a_regex_that_backtracks_without_bound_is_stopped_naming_itself() -> None:
    """With Python's re, this prompt holds the event loop for ages (the regex runs on
    the caller's text); the match is stopped instead."""
    with pytest.raises(RegexTimeout, match=r"^regex /\^\(a\|aa\)\+\$/ took more than 100 ms"):
        check(When(regex=r"^(a|aa)+$"), request("a" * 40 + "!"))
    assert check(When(regex=r"^(a|aa)+$"), request("a" * 64)) == (True, r"matches /^(a|aa)+$/")

"""Streaming text that never has to be taken back: half characters and stop strings."""

from __future__ import annotations

import pytest

from smmf_flow.models.backends.textstream import IncrementalDecoder, StopScanner

# a byte-level "tokenizer": each token is one byte of UTF-8
SNOW = "snow ☃ falls".encode()


def decode_bytes(ids: list[int]) -> str:
    return bytes(ids).decode("utf-8", errors="replace")


def test_decoder_holds_back_half_characters() -> None:
    decoder = IncrementalDecoder(decode_bytes)
    pieces = [decoder.add(b) for b in SNOW]
    assert "".join(pieces) == "snow ☃ falls"
    assert "\ufffd" not in "".join(pieces)
    assert pieces[5:8] == ["", "", "☃"]  # the snowman's three bytes come out together


def test_decoder_keeps_the_leading_space_after_context() -> None:
    # a SentencePiece-like decoder drops the space of a sequence's first word
    vocab = {1: " Hello", 2: " world"}

    def decode(ids: list[int]) -> str:
        return "".join(vocab[i] for i in ids).lstrip(" ")

    assert IncrementalDecoder(decode).add(2) == "world"
    assert IncrementalDecoder(decode, context=[1]).add(2) == " world"


@pytest.mark.parametrize(
    "pieces", [["Hello END rest"], ["Hello E", "N", "D rest"], ["Hello ", "EN", "Dless"]]
)
def test_scanner_cuts_at_a_stop_string_split_across_pieces(pieces: list[str]) -> None:
    scanner = StopScanner(["END"])
    out = "".join(scanner.feed(p) for p in pieces)
    assert scanner.stopped
    assert out + scanner.flush() == "Hello "


def test_scanner_releases_a_false_start_once_it_cannot_be_a_stop() -> None:
    scanner = StopScanner(["END"])
    assert scanner.feed("Hello E") == "Hello "
    assert scanner.feed("ast") == "East"
    assert scanner.feed("EN") == ""
    assert scanner.flush() == "EN" and not scanner.stopped


def test_scanner_picks_the_earliest_of_several_stops_and_passes_all_without_any() -> None:
    scanner = StopScanner(["b", "\n"])
    assert scanner.feed("a\nb") == "a"
    assert StopScanner(None).feed("anything") == "anything"

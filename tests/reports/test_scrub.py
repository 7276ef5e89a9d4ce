"""Masking identifiers in a report that leaves the hospital (`data.scrub`), against the
plainest reading of the rule: at each place, leftmost first, the longest secret there."""

from __future__ import annotations

import random

from qms.reports.data import mask, scrub


def _plainly(text: str, secrets: set[str]) -> str:
    out, i = [], 0
    longest_first = sorted(secrets, key=len, reverse=True)
    while i < len(text):
        found = next((s for s in longest_first if text.startswith(s, i)), None)
        if found is None:
            out.append(text[i])
            i += 1
        else:
            out.append(mask(found))
            i += len(found)
    return "".join(out)


def test_masks_the_longest_secret_at_each_place_in_every_string_of_the_data():
    secrets = {"P-0042", "P-00421", "CHG123426ABC123", "CHG123426ABC"}
    data = {
        "message": "P-00421 then P-0042x, CHG123426ABC123 and CHG123426ABC9",
        "params": {"product": "P-0042", "count": 3, "ids": ["CHG123426ABC", "P-004"]},
    }
    assert scrub(data, secrets) == {
        "message": "•••0421 then ••0042x, •••••••••••C123 and ••••••••6ABC9",
        "params": {"product": "••0042", "count": 3, "ids": ["••••••••6ABC", "P-004"]},
    }
    assert scrub(data, set()) is data


def test_agrees_with_the_plain_rule_on_overlapping_secrets():
    rng = random.Random(20261201)
    for _ in range(2000):
        alphabet = rng.choice(["AB-1", "AAB", "xy1-"])
        secrets = {
            "".join(rng.choice(alphabet) for _ in range(rng.randint(5, 9)))
            for _ in range(rng.randint(1, 15))
        }
        text = "".join(rng.choice(alphabet + " ") for _ in range(rng.randint(0, 60)))
        text += " ".join(rng.sample(sorted(secrets), min(3, len(secrets))))
        assert scrub({"t": [text]}, secrets) == {"t": [_plainly(text, secrets)]}, (secrets, text)


def test_thousands_of_secrets_and_long_ones():
    secrets = {f"P-{n:05d}" for n in range(5000)} | {"Z" * 3000, "Z" * 2999 + "Y"}
    text = "P-01234 P-99999 " + "Z" * 2999 + "Y"
    assert scrub(text, secrets) == "•••1234 P-99999 " + mask("Z" * 2999 + "Y")

"""The gateway's proof of who is asking (core.identity): valid, expired, wrong key, tampered."""

from __future__ import annotations

from core import identity

KEY = "k" * 48
NOW = 1_800_000_000.0


def test_a_fresh_proof_for_the_same_sender_verifies() -> None:
    proof = identity.sign(KEY, "1001", now=NOW)
    assert set(proof) == {"v", "ts", "sig"} and proof["ts"] == int(NOW)
    assert identity.verify(KEY, "1001", proof, now=NOW + 5)
    assert identity.verify_metadata(KEY, "1001", {"identity": proof, "locale": "en"},
                                    now=NOW + 5)


def test_an_expired_or_future_proof_is_refused() -> None:
    proof = identity.sign(KEY, "1001", now=NOW)
    assert identity.verify(KEY, "1001", proof, now=NOW + identity.MAX_AGE_SECONDS)
    assert not identity.verify(KEY, "1001", proof, now=NOW + identity.MAX_AGE_SECONDS + 1)
    assert not identity.verify(KEY, "1001", proof, now=NOW - 3600)


def test_a_proof_made_with_another_key_is_refused() -> None:
    assert not identity.verify(KEY, "1001", identity.sign("other-key", "1001", now=NOW), now=NOW)
    assert not identity.verify(None, "1001", identity.sign(KEY, "1001", now=NOW), now=NOW)
    assert not identity.verify("", "1001", identity.sign(KEY, "1001", now=NOW), now=NOW)


def test_a_tampered_sender_or_timestamp_is_refused() -> None:
    proof = identity.sign(KEY, "1001", now=NOW)
    assert not identity.verify(KEY, "1002", proof, now=NOW)  # someone else's id
    assert not identity.verify(KEY, "1001", {**proof, "ts": proof["ts"] + 60}, now=NOW + 60)
    assert not identity.verify(KEY, "1001", {**proof, "sig": "0" * 64}, now=NOW)


def test_missing_or_malformed_proofs_are_refused() -> None:
    for meta in (None, {}, {"identity": None}, {"identity": "x"}, {"identity": {"v": 1}},
                 {"identity": {"v": 1, "ts": "1", "sig": "a"}},
                 {"identity": {"v": 2, "ts": int(NOW), "sig": "a"}}):
        assert not identity.verify_metadata(KEY, "1001", meta, now=NOW)

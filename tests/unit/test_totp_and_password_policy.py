"""TOTP against RFC 6238's test vectors, its window and replay rule; the password policy against
Mattermost's own table of cases (`IsPasswordValidWithSettings`)."""

from __future__ import annotations

import base64

import pytest

from hubbub.config.settings import PasswordConfig
from hubbub.errors import AppError
from hubbub.services import totp
from hubbub.services.mfa import issuer_of
from hubbub.services.passwords import check_password

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(
    ("unix", "eight_digits"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_rfc6238_sha1_vectors(unix: int, eight_digits: str) -> None:
    # RFC 6238 Appendix B lists 8-digit codes; 6 digits are the same value modulo 10^6.
    assert totp.code_at(RFC_SECRET, unix) == eight_digits[-6:]


def test_window_is_one_step_either_side() -> None:
    now = 1_700_000_015.0
    step = totp.step_at(now)
    for offset, accepted in [(-2, False), (-1, True), (0, True), (1, True), (2, False)]:
        code = totp.code_at(RFC_SECRET, now + offset * totp.STEP_SECONDS)
        found = totp.verify(RFC_SECRET, code, now)
        assert (found == step + offset) if accepted else found is None, offset


def test_a_used_step_is_refused_and_old_steps_are_forgotten() -> None:
    now = 1_700_000_015.0
    code = totp.code_at(RFC_SECRET, now)
    step = totp.verify(RFC_SECRET, code, now)
    assert step is not None
    assert totp.verify(RFC_SECRET, code, now, used=[step]) is None
    assert totp.verify(RFC_SECRET, f" {code} ", now) == step  # trimmed, as Mattermost does
    later = now + 10 * totp.STEP_SECONDS
    assert totp.recent_steps([step, step - 5, totp.step_at(later)], later) == [totp.step_at(later)]


FULLWIDTH_DIGITS = "".join(chr(0xFF11 + i) for i in range(6))


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", FULLWIDTH_DIGITS, "12 456"])
def test_malformed_codes_are_refused(code: str) -> None:
    assert not totp.well_formed(code)
    assert totp.verify(RFC_SECRET, code, 1_700_000_000.0) is None


def test_secrets_are_160_bits_and_the_uri_is_what_apps_read() -> None:
    secret = totp.new_secret()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20
    assert secret != totp.new_secret()
    uri = totp.otpauth_uri("chat.example.com", "ann@example.com", secret)
    assert uri.startswith("otpauth://totp/chat.example.com:ann@example.com?secret=" + secret)
    assert "issuer=chat.example.com" in uri
    assert issuer_of("https://www.chat.example.com/") == "chat.example.com"
    assert issuer_of("") == "Mattermost"


def _policy(**rules: object) -> PasswordConfig:
    return PasswordConfig.model_validate({"MinimumLength": 5, **rules})


ALL = {"Lowercase": True, "Uppercase": True, "Number": True, "Symbol": True}


@pytest.mark.parametrize(
    ("password", "rules", "error"),
    [
        ("xxxxx", {}, None),
        ("x" * 72, {}, None),
        ("xxxx", {}, "model.user.is_valid.pwd.app_error"),
        ("x" * 73, {}, "model.user.is_valid.pwd.app_error"),
        ("é" * 37, {}, "model.user.is_valid.pwd.app_error"),  # 74 bytes, as Go's len()
        ("AAAAAAAAAAASD123!@#", {"Lowercase": True}, "model.user.is_valid.pwd_lowercase.app_error"),
        (
            "aaaaaaaaaaaasd123!@#",
            {"Uppercase": True},
            "model.user.is_valid.pwd_uppercase.app_error",
        ),
        ("asasdasdsadASD!@#", {"Number": True}, "model.user.is_valid.pwd_number.app_error"),
        ("asdasdasdasdasdASD123", {"Symbol": True}, "model.user.is_valid.pwd_symbol.app_error"),
        (
            "asdasdasdasdasdasd",
            ALL,
            "model.user.is_valid.pwd_lowercase_uppercase_number_symbol.app_error",
        ),
        # The id names every rule in force, also when only the length fails.
        ("aA1!", ALL, "model.user.is_valid.pwd_lowercase_uppercase_number_symbol.app_error"),
        ("asdASD!@#123", ALL, None),
        ("with space A1", {"Symbol": True, "Uppercase": True}, None),
    ],
)
def test_password_policy_as_mattermost(
    password: str, rules: dict[str, bool], error: str | None
) -> None:
    policy = _policy(**rules)
    if error is None:
        assert check_password(password, policy) == password
        return
    with pytest.raises(AppError) as raised:
        check_password(password, policy)
    assert raised.value.id == error
    assert raised.value.status_code == 400
    assert raised.value.params == {"Min": 5, "Max": 72}


def test_a_password_that_is_not_a_string_is_invalid() -> None:
    with pytest.raises(AppError) as raised:
        check_password(12345678, _policy())
    assert raised.value.id == "model.user.is_valid.pwd.app_error"

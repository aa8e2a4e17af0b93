"""Sign-in security through the real pages: Argon2, TOTP two-factor, lock-out, sessions, headers.

Everything runs against the real django-otp, django-axes and Django test client; start-up
behaviour runs `manage.py` in a subprocess with a production-like environment.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import runpy
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import serializers
from django.test import Client as HttpClient
from django.test import override_settings
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

import relisten.settings as production
from relisten.accounts.models import User
from relisten.audit.models import AuditEvent
from relisten.core.personas import Cast
from tests.conftest import PASSWORD

REPO = Path(__file__).resolve().parent.parent
SIGN_IN = "/accounts/sign-in/"
SIGN_OUT = "/accounts/sign-out/"
SETUP = "/accounts/two-factor/setup/"
VERIFY = "/accounts/two-factor/verify/"
CODES = "/accounts/two-factor/recovery-codes/"


# ---- helpers -----------------------------------------------------------------------------------

def _sign_in(http: HttpClient, username: str, password: str = PASSWORD, **extra: Any) -> Any:
    return http.post(SIGN_IN, {"username": username, "password": password}, **extra)


def _key_from_setup_page(html: str) -> bytes:
    match = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html)
    assert match, "the set-up page must show the key for typing in"
    plain = match.group(1).replace(" ", "")
    return base64.b32decode(plain + "=" * (-len(plain) % 8))


def _code(key: bytes, steps_ahead: int = 0, at: float | None = None) -> str:
    """What the person's authenticator app would show (steps_ahead=1: the next 30 s code)."""
    totp = TOTP(key, drift=steps_ahead)
    totp.time = time.time() if at is None else at
    return f"{totp.token():06d}"


def _wrong_code(key: bytes) -> str:
    """Six digits that no nearby time step of this key produces."""
    near = {_code(key, steps) for steps in range(-2, 3)}
    return next(f"{n:06d}" for n in range(314159, 1000000) if f"{n:06d}" not in near)


def _recovery_codes(html: str) -> list[str]:
    return re.findall(r"<code>([0-9a-f]{7}-[0-9a-f]{7})</code>", html)


def _unthrottle(user: User) -> None:
    """Let the few seconds of django-otp's back-off pass, without sleeping."""
    past = timezone.now() - dt.timedelta(minutes=5)
    TOTPDevice.objects.filter(user=user).update(throttling_failure_timestamp=past)


def _events(user: User, event_type: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(actor_id=user.public_id, event_type=event_type))


def _assert_audit_holds_no(secrets: Sequence[str], *, short: Sequence[str] = ()) -> None:
    """Long secrets must appear nowhere; six-digit codes nowhere in what events say.

    (Six digits turn up by chance in MACs and timestamps, so those are checked against the
    free-form parts only.)
    """
    dump = serializers.serialize("json", AuditEvent.objects.all())
    for secret in secrets:
        assert secret not in dump, "the audit trail must never hold passwords or codes"
    said = json.dumps([[e.event_type, e.actor_label, e.changes] for e in AuditEvent.objects.all()])
    for code in short:
        assert code not in said, "the audit trail must never hold one-time codes"


def _csp(response: Any) -> str:
    header = response.headers.get("Content-Security-Policy", "")
    assert header, f"no Content-Security-Policy on {response.status_code} response"
    assert "default-src 'self'" in header
    assert "frame-ancestors 'none'" in header
    assert "unsafe-inline" not in header
    return str(header)


# ---- password hashing --------------------------------------------------------------------------

def test_production_hashes_passwords_with_argon2() -> None:
    assert production.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    with override_settings(PASSWORD_HASHERS=production.PASSWORD_HASHERS):
        person = User(username="hash.check")
        person.set_password("a long clinic passphrase")
        assert person.password.startswith("argon2$")
        assert person.check_password("a long clinic passphrase")
        assert not person.check_password("a long clinic passphrase!")


@pytest.mark.django_db
def test_argon2_password_signs_in_through_the_page(cast: Cast) -> None:
    with override_settings(PASSWORD_HASHERS=production.PASSWORD_HASHERS):
        person = cast.client_user_a
        person.set_password("another long passphrase")
        person.save()
        assert User.objects.get(pk=person.pk).password.startswith("argon2$")
        response = _sign_in(HttpClient(), person.username, "another long passphrase")
    assert response.status_code == 302


# ---- two-factor sign-in ------------------------------------------------------------------------

def test_staff_enrol_then_sign_in_with_code_and_recovery_code(cast: Cast) -> None:
    therapist = cast.therapist_a
    http = HttpClient()

    # Password alone: signed in, but every page leads to enrolment first.
    response = _sign_in(http, therapist.username)
    assert response.status_code == 302
    response = http.get("/clients/")
    assert response.status_code == 302
    assert response["Location"].startswith(SETUP)
    assert "next=%2Fclients%2F" in response["Location"]

    page = http.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and "<?xml" not in html
    key = _key_from_setup_page(html)
    # A reload shows the same key, so a half-finished scan is not wasted.
    assert _key_from_setup_page(http.get(SETUP).content.decode()) == key

    # A wrong code: a clear message, and still not signed in.
    wrong = _wrong_code(key)
    response = http.post(SETUP + "?next=/clients/", {"code": wrong})
    assert response.status_code == 200
    assert "That code did not match" in response.content.decode()
    assert http.get("/").status_code == 302

    # Straight away again: django-otp's back-off is real and the page says to wait.
    right = _code(key)
    response = http.post(SETUP + "?next=/clients/", {"code": right})
    assert response.status_code == 200
    assert "Please wait" in response.content.decode()

    _unthrottle(therapist)
    response = http.post(SETUP + "?next=/clients/", {"code": right})
    assert response.status_code == 302
    assert response["Location"] == CODES
    page = http.get(CODES)
    codes = _recovery_codes(page.content.decode())
    assert len(codes) == 10
    assert "will not be shown again" in page.content.decode()
    assert 'href="/clients/"' in page.content.decode()
    # Shown once: a second visit does not show them.
    again = http.get(CODES)
    assert again.status_code == 302
    assert not _recovery_codes(http.get(again["Location"]).content.decode())

    assert http.get("/").status_code == 200
    assert http.post(SIGN_OUT).status_code == 302
    assert http.get("/").status_code == 302  # signed out really means signed out

    # Next sign-in asks for the code; the code already used cannot be replayed.
    http = HttpClient()
    _sign_in(http, therapist.username)
    response = http.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(VERIFY)
    response = http.post(VERIFY, {"code": right})
    assert response.status_code == 200
    assert "That code is not valid" in response.content.decode()
    _unthrottle(therapist)
    # The app's next code (the step after the one used): valid, and exact even at a 30 s edge.
    used_step = TOTPDevice.objects.get(user=therapist, confirmed=True).last_t
    response = http.post(VERIFY + "?next=/clients/", {"code": _code(key, at=(used_step + 1) * 30)})
    assert response.status_code == 302
    assert response["Location"] == "/clients/"
    assert http.get("/").status_code == 200
    http.post(SIGN_OUT)

    # A recovery code works once ...
    http = HttpClient()
    _sign_in(http, therapist.username)
    response = http.post(VERIFY, {"code": codes[0].upper()})
    assert response.status_code == 302
    assert "it will not work again" in http.get("/").content.decode()
    assert StaticToken.objects.filter(device__user=therapist).count() == 9
    http.post(SIGN_OUT)

    # ... and not twice.
    http = HttpClient()
    _sign_in(http, therapist.username)
    response = http.post(VERIFY, {"code": codes[0]})
    assert response.status_code == 200
    assert "That code is not valid" in response.content.decode()
    assert http.get("/").status_code == 302

    # The audit trail tells the story, without any password, code or key.
    assert len(_events(therapist, "user.signed_in")) == 4
    assert len(_events(therapist, "user.signed_out")) == 3
    assert len(_events(therapist, "mfa.enrolled")) == 1
    methods = sorted(e.changes["method"] for e in _events(therapist, "mfa.verified"))
    assert methods == ["recovery_code", "totp", "totp"]
    assert len(_events(therapist, "mfa.failed")) == 4
    _assert_audit_holds_no([PASSWORD, *codes, base64.b32encode(key).decode()[:16]],
                           short=[right, wrong])


def test_client_is_not_forced_to_enrol(cast: Cast) -> None:
    http = HttpClient()
    assert _sign_in(http, cast.client_user_a.username).status_code == 302
    assert http.get("/").status_code == 200
    assert http.get("/accounts/security/").status_code == 200
    assert not TOTPDevice.objects.filter(user=cast.client_user_a).exists()


def test_staff_without_device_not_forced_when_mfa_is_off(cast: Cast) -> None:
    with override_settings(REQUIRE_MFA=False):
        http = HttpClient()
        _sign_in(http, cast.therapist_a.username)
        assert http.get("/").status_code == 200
        assert http.get(f"/clients/{cast.client_a.public_id}/").status_code == 200
    # Someone who did enrol is still asked for the code, MFA policy or not.
    TOTPDevice.objects.create(user=cast.therapist_b, name="phone", confirmed=True)
    with override_settings(REQUIRE_MFA=False):
        http = HttpClient()
        _sign_in(http, cast.therapist_b.username)
        assert http.get("/")["Location"].startswith(VERIFY)


def test_mfa_is_required_by_default_for_every_staff_role(cast: Cast) -> None:
    assert settings.REQUIRE_MFA is True
    for person in (cast.admin, cast.supervisor, cast.trainee, cast.researcher):
        http = HttpClient()
        _sign_in(http, person.username)
        assert http.get("/")["Location"].startswith(SETUP), person.username


def test_mfa_default_is_on_except_in_demo_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RELISTEN_REQUIRE_MFA", raising=False)
    monkeypatch.delenv("RELISTEN_DEMO_MODE", raising=False)
    assert _settings_for(monkeypatch, tmp_path)["REQUIRE_MFA"] is True
    assert _settings_for(monkeypatch, tmp_path, RELISTEN_DEMO_MODE="1")["REQUIRE_MFA"] is False
    demo_with_mfa = _settings_for(monkeypatch, tmp_path, RELISTEN_DEMO_MODE="1",
                                  RELISTEN_REQUIRE_MFA="1")
    assert demo_with_mfa["REQUIRE_MFA"] is True


def test_api_refuses_unverified_staff_with_401_json(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    url = f"/api/v1/clients/{cast.client_a.public_id}"
    http = HttpClient()
    _sign_in(http, cast.therapist_a.username)  # password only, no device yet
    response = http.get(url)
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert "Two-factor" in response.json()["detail"]

    TOTPDevice.objects.create(user=cast.therapist_a, name="phone", confirmed=True)
    assert http.get(url).status_code == 401  # enrolled but this session has not verified

    assert signed_in(cast.therapist_a).get(url).status_code == 200


def test_password_alone_cannot_reach_security_settings(cast: Cast) -> None:
    """A stolen password must not be enough to mint recovery codes."""
    therapist = cast.therapist_a
    device = TOTPDevice.objects.create(user=therapist, name="phone", confirmed=True)
    http = HttpClient()
    _sign_in(http, therapist.username)
    response = http.post(CODES)
    assert response.status_code == 302
    assert response["Location"].startswith(VERIFY)
    assert not StaticToken.objects.filter(device__user=therapist).exists()
    assert http.get("/accounts/security/")["Location"].startswith(VERIFY)
    # Nor can it replace the authenticator with the attacker's own.
    assert http.get(SETUP)["Location"].startswith(VERIFY)
    assert list(TOTPDevice.objects.filter(user=therapist)) == [device]


def test_verified_staff_can_make_new_recovery_codes(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    http = signed_in(cast.therapist_a)
    response = http.post(CODES)
    assert response.status_code == 302
    codes = _recovery_codes(http.get(CODES).content.decode())
    assert len(codes) == 10
    assert "10 unused recovery codes" in http.get("/accounts/security/").content.decode()
    assert _events(cast.therapist_a, "mfa.recovery_codes_regenerated")
    _assert_audit_holds_no(codes)


# ---- lock-out ----------------------------------------------------------------------------------

def test_lockout_is_per_account_and_lifts_after_cool_off(cast: Cast) -> None:
    from axes.models import AccessAttempt

    locked, colleague = cast.therapist_a, cast.therapist_b
    limit = settings.AXES_FAILURE_LIMIT
    assert settings.AXES_LOCKOUT_PARAMETERS == ["username"]
    http = HttpClient()  # everyone shares one address here, like a clinic behind one router
    for attempt in range(limit - 1):
        response = _sign_in(http, locked.username, f"wrong-password-{attempt}")
        assert response.status_code == 200
        assert "didn't match" in response.content.decode()
    response = _sign_in(http, locked.username, "wrong-password-last")
    assert response.status_code == 429
    assert "Sign-in paused" in response.content.decode()

    # Even the right password is refused while the account is paused, with a clear message.
    refused = HttpClient()
    response = _sign_in(refused, locked.username)
    assert response.status_code == 429
    page = response.content.decode()
    assert "paused for 15 minutes" in page
    assert "Colleagues can keep signing in" in page
    _csp(response)
    assert refused.get("/")["Location"].startswith(SIGN_IN)  # not signed in

    # A colleague at the same address is not affected.
    other = HttpClient()
    assert _sign_in(other, colleague.username).status_code == 302
    assert other.get("/")["Location"].startswith(SETUP)  # signed in, on to the second step

    # Still locked a moment before the cool-off ends ...
    cool_off = settings.AXES_COOLOFF_TIME
    assert cool_off == dt.timedelta(minutes=15)
    AccessAttempt.objects.filter(username=locked.username).update(
        attempt_time=timezone.now() - cool_off + dt.timedelta(minutes=1))
    assert _sign_in(HttpClient(), locked.username).status_code == 429
    # ... and the account works again once it has passed.
    AccessAttempt.objects.filter(username=locked.username).update(
        attempt_time=timezone.now() - cool_off - dt.timedelta(minutes=1))
    http = HttpClient()
    assert _sign_in(http, locked.username).status_code == 302
    assert http.get("/")["Location"].startswith(SETUP)

    failures = _events(locked, "user.sign_in_failed")
    assert len(failures) == limit + 2
    assert [e.changes["locked_out"] for e in failures[:limit - 1]] == [False] * (limit - 1)
    assert all(e.changes["locked_out"] for e in failures[limit - 1:])
    _assert_audit_holds_no([PASSWORD, "wrong-password"])


def test_unknown_username_is_not_written_to_the_audit_trail(cast: Cast) -> None:
    before = AuditEvent.objects.count()
    # People sometimes type their password into the username box.
    response = _sign_in(HttpClient(), "My-Secret-Passphrase-42", "whatever")
    assert response.status_code == 200
    assert AuditEvent.objects.count() == before


# ---- sessions and cookies ----------------------------------------------------------------------

def test_idle_session_expires_and_activity_renews_it(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    http = signed_in(cast.therapist_a)
    key = http.session.session_key

    # Activity pushes the expiry forward by the idle time.
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() + dt.timedelta(minutes=1))
    assert http.get("/").status_code == 200
    renewed = Session.objects.get(session_key=key).expire_date
    assert renewed > timezone.now() + dt.timedelta(minutes=29)

    # Idle past the limit: the session is gone and the next page asks to sign in again.
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - dt.timedelta(seconds=1))
    response = http.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(SIGN_IN)


def _settings_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> dict[str, Any]:
    """Evaluate relisten/settings.py afresh under the given environment."""
    monkeypatch.setenv("RELISTEN_DATA_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(REPO / "relisten" / "settings.py"), run_name="settings_probe")


_COOKIE_SETTINGS = (
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY",
    "CSRF_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_SAMESITE",
    "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER", "SECURE_HSTS_SECONDS",
    "SESSION_COOKIE_AGE",
)


def test_idle_minutes_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    probe = _settings_for(monkeypatch, tmp_path, RELISTEN_SESSION_IDLE_MINUTES="10")
    assert probe["SESSION_COOKIE_AGE"] == 600
    assert probe["SESSION_SAVE_EVERY_REQUEST"] is True


def test_https_mode_sets_secure_httponly_samesite_cookies(
    cast: Cast, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plain = _settings_for(monkeypatch, tmp_path, RELISTEN_HTTPS="0")
    assert plain["SESSION_COOKIE_SECURE"] is False
    probe = _settings_for(monkeypatch, tmp_path, RELISTEN_HTTPS="1")
    assert probe["SECURE_HSTS_SECONDS"] >= 31536000

    with override_settings(**{name: probe[name] for name in _COOKIE_SETTINGS}):
        http = HttpClient()
        # Plain HTTP is sent to HTTPS before any cookie is set.
        response = http.get(SIGN_IN)
        assert response.status_code == 301
        assert response["Location"].startswith("https://")

        page = http.get(SIGN_IN, secure=True)
        assert page.status_code == 200
        assert "Strict-Transport-Security" in page.headers
        csrf = page.cookies["csrftoken"]
        response = _sign_in(http, cast.client_user_a.username, secure=True)
        assert response.status_code == 302
        session = response.cookies[settings.SESSION_COOKIE_NAME]
        for cookie in (session, csrf):
            assert cookie["secure"] is True
            assert cookie["httponly"] is True
            assert cookie["samesite"] == "Lax"


# ---- headers -----------------------------------------------------------------------------------

def test_every_html_page_has_a_content_security_policy(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    anonymous = HttpClient()
    responses = [
        anonymous.get(SIGN_IN),
        anonymous.get("/no-such-page/"),
        _sign_in(anonymous, cast.therapist_a.username, "wrong"),
    ]
    enrolling = HttpClient()
    _sign_in(enrolling, cast.therapist_b.username)
    responses.append(enrolling.get(SETUP))
    staff = signed_in(cast.therapist_a)
    responses += [
        staff.get("/"),
        staff.get("/accounts/security/"),
        staff.get(f"/clients/{cast.client_a.public_id}/"),
        staff.get(f"/clients/{cast.client_b.public_id}/"),  # someone else's client: 404
        staff.get("/no-such-page/"),
    ]
    statuses = sorted({r.status_code for r in responses})
    assert statuses == [200, 404]
    for response in responses:
        assert response["Content-Type"].startswith("text/html")
        _csp(response)
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"


# ---- start-up behaviour (subprocesses) ---------------------------------------------------------

_STRONG_SECRET = "x7Kq2" + "bN9pL4vR8tW1yZ3mC6fH0jD5gS" * 3


def _run_manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`manage.py` with only the given RELISTEN_* settings (none leak in from the test run)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELISTEN_", "DJANGO_"))}
    clean.update(env)
    clean["DJANGO_SETTINGS_MODULE"] = "relisten.settings"
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args], env=clean, cwd=REPO,
        capture_output=True, text=True, timeout=120,
    )


def _production_env(tmp_path: Path) -> dict[str, str]:
    return {
        "RELISTEN_DEBUG": "0",
        "RELISTEN_HTTPS": "1",
        "RELISTEN_SECRET_KEY": _STRONG_SECRET,
        "RELISTEN_ALLOWED_HOSTS": "relisten.clinic.example",
        "RELISTEN_AUDIT_KEY": "5e" * 32,
        "RELISTEN_DATA_DIR": str(tmp_path),
    }


def test_deploy_checks_pass_with_production_settings(tmp_path: Path) -> None:
    result = _run_manage(["check", "--deploy", "--fail-level", "WARNING"],
                         _production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("secret", [None, "change-me", "CHANGE-ME", "short-but-random-Zq81",
                                    "django-insecure-" + "q" * 50, "ab" * 40])
def test_refuses_to_start_without_a_strong_secret(tmp_path: Path, secret: str | None) -> None:
    env = _production_env(tmp_path)
    env.pop("RELISTEN_SECRET_KEY")
    if secret is not None:
        env["RELISTEN_SECRET_KEY"] = secret
    result = _run_manage(["check"], env)
    assert result.returncode != 0
    assert "RELISTEN_SECRET_KEY" in result.stderr
    assert "refuses to start" in result.stderr
    if secret is not None:
        assert secret not in result.stderr  # a rejected secret is still not printed


def test_debug_mode_starts_without_a_secret(tmp_path: Path) -> None:
    result = _run_manage(["check"], {"RELISTEN_DEBUG": "1", "RELISTEN_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr


def test_recovery_codes_fit_the_token_column(cast: Cast) -> None:
    """SQLite ignores varchar lengths; PostgreSQL does not. Codes must fit django-otp's column."""
    from django_otp.plugins.otp_static.models import StaticToken

    from relisten.accounts.mfa import regenerate_recovery_codes

    limit = StaticToken._meta.get_field("token").max_length
    codes = regenerate_recovery_codes(cast.therapist_a)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(code) <= limit for code in codes)

"""TOTP enrolment and recovery codes on top of django-otp."""

from __future__ import annotations

import base64
import math
import re
import secrets
from dataclasses import dataclass
from io import BytesIO

import qrcode
import qrcode.image.svg
from django.db import transaction
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from relisten.accounts.models import User
from relisten.audit.log import record_event

RECOVERY_CODE_COUNT = 10
# Authenticator apps show six digits; anything else typed into the box is a recovery code.
# Routing by shape keeps a recovery code from counting as a wrong TOTP code (which would
# throttle the authenticator) and the other way round.
_TOTP_SHAPE = re.compile(r"^\d{6}$")


@dataclass(frozen=True)
class CodeCheck:
    """Outcome of checking a code: the device that accepted it, or why none did."""

    device: Device | None
    # Seconds to wait before the next try, when too many wrong codes were entered in a row.
    wait_seconds: int = 0
    method: str = ""


def normalise(code: str) -> str:
    """People copy codes with spaces or in capitals; neither is part of the code."""
    return re.sub(r"\s+", "", code).lower()


def pending_device(user: User) -> TOTPDevice:
    """The unconfirmed authenticator being enrolled; reused so a reload keeps the same QR code."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def base32_key(device: TOTPDevice) -> str:
    """The key as authenticator apps expect it typed in: base32, grouped in fours for reading."""
    plain = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(plain[i:i + 4] for i in range(0, len(plain), 4))


def qr_svg(device: TOTPDevice) -> str:
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode()
    # The XML declaration is meaningless (and invalid) inside an HTML page.
    return re.sub(r"^<\?xml[^>]*\?>\s*", "", svg)


def _wait_seconds(device: Device) -> int:
    allowed, data = device.verify_is_allowed()
    if allowed:
        return 0
    locked_until = (data or {}).get("locked_until")
    if locked_until is None:
        return 1
    return max(1, int(math.ceil((locked_until - timezone.now()).total_seconds())))


def check_enrolment_code(device: TOTPDevice, code: str) -> CodeCheck:
    """Whether the code proves the person's app holds this (not yet confirmed) key."""
    wait = _wait_seconds(device)
    if wait:
        return CodeCheck(device=None, wait_seconds=wait)
    cleaned = normalise(code)
    if _TOTP_SHAPE.match(cleaned) and device.verify_token(cleaned):
        return CodeCheck(device=device, method="totp")
    if not _TOTP_SHAPE.match(cleaned):
        # Still counts as a failed try, so guessing cannot go faster with odd inputs.
        device.throttle_increment()
    return CodeCheck(device=None)


def _new_recovery_codes(user: User) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    # django-otp stores tokens in 16 characters: two groups of 7 hex digits (56 random bits).
    codes = [f"{secrets.token_hex(4)[:7]}-{secrets.token_hex(4)[:7]}"
             for _ in range(RECOVERY_CODE_COUNT)]
    for code in codes:
        StaticToken.objects.create(device=device, token=code)
    return codes


def confirm_enrolment(user: User, device: TOTPDevice) -> list[str]:
    """Activate the authenticator (after a correct code) and issue fresh recovery codes."""
    with transaction.atomic():
        # Any older authenticator stops working: a person has one phone app at a time.
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = _new_recovery_codes(user)
        record_event(actor=user, event_type="mfa.enrolled", target=user)
    return codes


def regenerate_recovery_codes(user: User) -> list[str]:
    with transaction.atomic():
        codes = _new_recovery_codes(user)
        record_event(actor=user, event_type="mfa.recovery_codes_regenerated", target=user)
    return codes


def verify_code(user: User, code: str) -> CodeCheck:
    """Check a sign-in code: six digits go to the authenticator, anything else is a recovery code.

    A recovery code is deleted by django-otp when it is accepted, so each works once.
    """
    cleaned = normalise(code)
    # Row locks, as in django_otp.verify_token: two tabs racing the same recovery code (or the
    # same TOTP step) must not both succeed.
    with transaction.atomic():
        return _verify_locked(user, cleaned)


def _verify_locked(user: User, cleaned: str) -> CodeCheck:
    devices: list[Device]
    if _TOTP_SHAPE.match(cleaned):
        devices = list(TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True))
        method = "totp"
    else:
        devices = list(StaticDevice.objects.select_for_update().filter(user=user, confirmed=True))
        method = "recovery_code"
    waits: list[int] = []
    for device in devices:
        wait = _wait_seconds(device)
        if wait:
            waits.append(wait)
            continue
        if device.verify_token(cleaned):
            return CodeCheck(device=device, method=method)
    if waits and len(waits) == len(devices):
        return CodeCheck(device=None, wait_seconds=min(waits))
    return CodeCheck(device=None)

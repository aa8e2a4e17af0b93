"""TOTP enrolment and recovery codes on top of django-otp."""

from __future__ import annotations

import secrets
from io import BytesIO

import qrcode
import qrcode.image.svg
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from relisten.accounts.models import User
from relisten.audit.log import record_event

RECOVERY_CODE_COUNT = 10


def pending_device(user: User) -> TOTPDevice:
    """The unconfirmed authenticator being enrolled; reused so a reload keeps the same QR code."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def qr_svg(device: TOTPDevice) -> str:
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


def _new_recovery_codes(user: User) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODE_COUNT)]
    for code in codes:
        StaticToken.objects.create(device=device, token=code)
    return codes


def confirm_enrolment(user: User, device: TOTPDevice) -> list[str]:
    """Activate the authenticator (after a correct code) and issue fresh recovery codes."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk).delete()
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


def verify_code(user: User, code: str) -> TOTPDevice | StaticDevice | None:
    """The device that accepts this code (TOTP first, then a one-use recovery code)."""
    cleaned = code.strip().replace(" ", "")
    for totp in TOTPDevice.objects.filter(user=user, confirmed=True):
        allowed, _ = totp.verify_is_allowed()
        if allowed and totp.verify_token(cleaned):
            return totp
    for static in StaticDevice.objects.filter(user=user, confirmed=True):
        if static.verify_token(cleaned.lower()):
            return static
    return None

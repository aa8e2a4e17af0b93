from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout as auth_logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.plugins.otp_static.models import StaticToken

from relisten import access
from relisten.accounts import actions, mfa
from relisten.accounts.forms import (
    AddRoleForm,
    CodeForm,
    ConsentTextForm,
    EnrolmentCodeForm,
    NewPersonForm,
)
from relisten.accounts.middleware import is_verified
from relisten.accounts.models import Role, User
from relisten.audit.log import record_event_now
from relisten.clients.actions import set_clinic_sharing_default
from relisten.consent.actions import publish_consent_text
from relisten.consent.models import ConsentText, Purpose
from relisten.web import signed_in_user as _user

_NEW_CODES_SESSION_KEY = "relisten_new_recovery_codes"


def _known_user(username: str) -> User | None:
    """The account a failed sign-in was aimed at, if it exists.

    Only existing accounts are audited: an unknown "username" is often a password typed into
    the wrong box, and must not end up in the audit trail.
    """
    try:
        user: User = User._default_manager.get_by_natural_key(username)
    except User.DoesNotExist:
        return None
    return user


class SignInView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        record_event_now(actor=form.get_user(), event_type="user.signed_in")
        return response

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        username = str(form.data.get("username", "")).strip()
        target = _known_user(username) if username else None
        if target is not None:
            # No password, not even its length: only that a try failed and whether the account
            # is now paused (django-axes marks the request when it locks the account).
            locked = bool(getattr(self.request, "axes_locked_out", False))
            record_event_now(actor=target, event_type="user.sign_in_failed", target=target,
                             changes={"locked_out": locked})
        return super().form_invalid(form)


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """django-axes' lock-out page (AXES_LOCKOUT_CALLABLE): says plainly how long to wait."""
    cool_off = settings.AXES_COOLOFF_TIME
    minutes = max(1, round(cool_off.total_seconds() / 60)) if cool_off else None
    return render(request, "accounts/locked_out.html", {"minutes": minutes},
                  status=getattr(settings, "AXES_HTTP_RESPONSE_CODE", 429))


def sign_out(request: HttpRequest) -> HttpResponse:
    # Only POST signs out: a GET link could be triggered by any page (an image tag, a prefetch).
    if request.method == "POST":
        if request.user.is_authenticated:
            record_event_now(actor=request.user, event_type="user.signed_out")
        auth_logout(request)
        messages.info(request, "You are signed out.")
    return redirect("accounts:login")



def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, {request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("home")


def _with_next(request: HttpRequest, name: str) -> str:
    url = reverse(name)
    target = request.GET.get("next", "")
    return f"{url}?{urlencode({'next': target})}" if target else url


def _wait_message(seconds: int) -> str:
    return (f"Too many codes in a row did not match. Please wait {seconds} second"
            f"{'' if seconds == 1 else 's'}, then type the newest code from your app.")


@login_required
def mfa_setup(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if user_has_device(user) and not is_verified(request):
        # Replacing an authenticator needs the current one first.
        return redirect(_with_next(request, "accounts:mfa_verify"))
    device = mfa.pending_device(user)
    form = EnrolmentCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        result = mfa.check_enrolment_code(device, form.cleaned_data["code"])
        if result.device is not None:
            codes = mfa.confirm_enrolment(user, device)
            otp_login(request, device)
            record_event_now(actor=user, event_type="mfa.verified",
                             changes={"method": "totp", "stage": "enrolment"})
            return _show_codes_once(request, codes, new=True)
        record_event_now(actor=user, event_type="mfa.failed",
                         changes={"stage": "enrolment", "throttled": bool(result.wait_seconds)})
        form.add_error("code", _wait_message(result.wait_seconds) if result.wait_seconds else (
            "That code did not match. Check that the time on your phone is set automatically, "
            "then type the newest 6-digit code."))
    return render(request, "accounts/mfa_setup.html", {
        "form": form, "qr_svg": mfa.qr_svg(device), "secret": mfa.base32_key(device),
    })


@login_required
def mfa_verify(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if is_verified(request):
        return HttpResponseRedirect(_safe_next(request))
    if not user_has_device(user):
        return redirect(_with_next(request, "accounts:mfa_setup"))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        result = mfa.verify_code(user, form.cleaned_data["code"])
        if result.device is not None:
            otp_login(request, result.device)
            record_event_now(actor=user, event_type="mfa.verified",
                             changes={"method": result.method})
            if result.method == "recovery_code":
                messages.info(request, "You used a recovery code; it will not work again. "
                                       "You can make new codes under Security.")
            return HttpResponseRedirect(_safe_next(request))
        record_event_now(actor=user, event_type="mfa.failed",
                         changes={"stage": "sign_in", "throttled": bool(result.wait_seconds)})
        form.add_error("code", _wait_message(result.wait_seconds) if result.wait_seconds else (
            "That code is not valid. Type the newest code from your app, or one of your "
            "recovery codes that you have not used yet."))
    return render(request, "accounts/mfa_verify.html", {"form": form})


def _show_codes_once(request: HttpRequest, codes: list[str], *, new: bool) -> HttpResponse:
    # Post/redirect/get: a reload of the page must not re-submit the form. The codes wait in
    # the session only until the next page view shows them.
    request.session[_NEW_CODES_SESSION_KEY] = {"codes": codes, "new": new,
                                               "next": _safe_next(request)}
    return redirect("accounts:recovery_codes")


@login_required
def recovery_codes(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _show_codes_once(request, mfa.regenerate_recovery_codes(_user(request)), new=False)
    pending = request.session.pop(_NEW_CODES_SESSION_KEY, None)
    if not pending:
        messages.info(request, "Recovery codes are shown only once. If you did not save them, "
                               "make new ones here.")
        return redirect("accounts:security")
    return render(request, "accounts/recovery_codes.html", pending)


@login_required
def security(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    return render(request, "accounts/security.html", {
        "has_device": user_has_device(user),
        "codes_left": StaticToken.objects.filter(device__user=user,
                                                 device__confirmed=True).count(),
    })


# ---- clinic administration -----------------------------------------------------------------

@login_required
def clinic_people(request: HttpRequest, clinic_id: str) -> HttpResponse:
    user = _user(request)
    clinic = access.get_clinic_for_admin(user, clinic_id)
    form = NewPersonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        actions.create_user(
            actor=user, clinic=clinic, username=data["username"], password=data["password"],
            display_name=data["display_name"], email=data["email"], roles=data["roles"],
        )
        messages.success(request, f"{data['display_name']} can now sign in.")
        return redirect("accounts:clinic_people", clinic_id=clinic.public_id)
    memberships = (
        clinic.memberships.filter(active=True).exclude(role=Role.CLIENT)
        .select_related("user").order_by("user__username", "role")
    )
    return render(request, "accounts/clinic_people.html", {
        "clinic": clinic, "memberships": memberships, "form": form, "role_form": AddRoleForm(),
    })


@login_required
@require_POST
def membership_revoke(request: HttpRequest, membership_id: str) -> HttpResponse:
    user = _user(request)
    membership = access.get_membership_for_admin(user, membership_id)
    if membership.user_id == user.pk and membership.role == Role.ADMIN:
        messages.error(request, "You cannot remove your own admin role; ask another admin.")
    else:
        actions.revoke_role(actor=user, membership=membership)
        messages.success(request, "Role removed.")
    return redirect("accounts:clinic_people", clinic_id=membership.clinic.public_id)


@login_required
@require_POST
def membership_add_role(request: HttpRequest, membership_id: str) -> HttpResponse:
    user = _user(request)
    membership = access.get_membership_for_admin(user, membership_id)
    form = AddRoleForm(request.POST)
    if form.is_valid():
        actions.grant_role(actor=user, clinic=membership.clinic, user=membership.user,
                           role=form.cleaned_data["role"])
        messages.success(request, "Role added.")
    else:
        messages.error(request, "Choose a role to add.")
    return redirect("accounts:clinic_people", clinic_id=membership.clinic.public_id)


@login_required
@require_POST
def clinic_sharing_default(request: HttpRequest, clinic_id: str) -> HttpResponse:
    """Clinic policy: whether new sessions start shared with the client (portal helper)."""
    user = _user(request)
    clinic = access.get_clinic_for_admin(user, clinic_id)
    share = request.POST.get("share_by_default") == "on"
    set_clinic_sharing_default(actor=user, clinic=clinic, share=share)
    messages.success(request, "New sessions will start shared with the client." if share else
                     "New sessions will start not shared with the client.")
    return redirect("accounts:clinic_people", clinic_id=clinic.public_id)


@login_required
def consent_texts(request: HttpRequest, clinic_id: str) -> HttpResponse:
    clinic = access.get_clinic_for_admin(_user(request), clinic_id)
    current = []
    for purpose in Purpose:
        text = (ConsentText.objects.filter(clinic=clinic, purpose=purpose)
                .order_by("-version").first())
        current.append((purpose, text))
    return render(request, "accounts/consent_texts.html", {"clinic": clinic, "current": current})


@login_required
def consent_text_edit(request: HttpRequest, text_id: str) -> HttpResponse:
    user = _user(request)
    text = access.get_consent_text_for_admin(user, text_id)
    form = ConsentTextForm(request.POST or None, initial={"body": text.body})
    if request.method == "POST" and form.is_valid():
        new = publish_consent_text(actor=user, clinic=text.clinic, purpose=text.purpose,
                                   body=form.cleaned_data["body"])
        messages.success(request, f"Version {new.version} is now shown to clients.")
        return redirect("accounts:consent_texts", clinic_id=text.clinic.public_id)
    versions = ConsentText.objects.filter(clinic=text.clinic, purpose=text.purpose)
    return render(request, "accounts/consent_text_edit.html",
                  {"text": text, "form": form, "versions": versions,
                   "purpose_label": Purpose(text.purpose).label})


from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp import user_has_device

from relisten import access
from relisten.accounts import actions, mfa
from relisten.accounts.forms import AddRoleForm, CodeForm, ConsentTextForm, NewPersonForm
from relisten.accounts.models import Role, User
from relisten.audit.log import record_event_now
from relisten.consent.actions import publish_consent_text
from relisten.consent.models import ConsentText, Purpose


class SignInView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        record_event_now(actor=form.get_user(), event_type="user.signed_in")
        return response


def sign_out(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if request.user.is_authenticated:
            record_event_now(actor=request.user, event_type="user.signed_out")
        auth_views.auth_logout(request)
        messages.info(request, "You are signed out.")
    return redirect("accounts:login")


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@login_required
def mfa_setup(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if user_has_device(user) and not request.user.is_verified():  # type: ignore[union-attr]
        # Replacing an authenticator needs the current one first.
        return redirect("accounts:mfa_verify")
    device = mfa.pending_device(user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["code"].strip()):
            codes = mfa.confirm_enrolment(user, device)
            otp_login(request, device)
            return render(request, "accounts/recovery_codes.html", {"codes": codes, "new": True})
        form.add_error("code", "That code did not match. Check the time on your phone and try the "
                               "newest code.")
    return render(request, "accounts/mfa_setup.html", {
        "form": form, "qr_svg": mfa.qr_svg(device), "secret": _base32(device.bin_key),
    })


def _base32(key: bytes) -> str:
    import base64

    return base64.b32encode(key).decode().rstrip("=")


@login_required
def mfa_verify(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not user_has_device(user):
        return redirect("accounts:mfa_setup")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = mfa.verify_code(user, form.cleaned_data["code"])
        if device is not None:
            otp_login(request, device)
            record_event_now(actor=user, event_type="mfa.verified",
                             changes={"method": "recovery_code" if "Static" in type(device).__name__
                                      else "totp"})
            return HttpResponseRedirect(_safe_next(request))
        record_event_now(actor=user, event_type="mfa.failed")
        form.add_error("code", "That code is not valid. Try the newest code from your app, or a "
                               "recovery code.")
    return render(request, "accounts/mfa_verify.html", {"form": form})


def _safe_next(request: HttpRequest) -> str:
    from django.utils.http import url_has_allowed_host_and_scheme

    target = request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return target
    return reverse("home")


@login_required
@require_POST
def recovery_codes(request: HttpRequest) -> HttpResponse:
    codes = mfa.regenerate_recovery_codes(_user(request))
    return render(request, "accounts/recovery_codes.html", {"codes": codes, "new": False})


@login_required
def security(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/security.html", {"has_device": user_has_device(request.user)})


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
def consent_texts(request: HttpRequest, clinic_id: str) -> HttpResponse:
    clinic = access.get_clinic_for_admin(_user(request), clinic_id)
    current = []
    for purpose in Purpose:
        text = ConsentText.objects.filter(clinic=clinic, purpose=purpose).order_by("-version").first()
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


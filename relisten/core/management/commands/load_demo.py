from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from relisten.accounts.models import Clinic
from relisten.core.demo import add_demo_recording
from relisten.core.demo_outcomes import add_demo_outcomes
from relisten.core.personas import DEMO_CLINIC, STAFF, build_cast

DEMO_PASSWORD = "relisten-demo-2026"


class Command(BaseCommand):
    help = "Load the demo clinic with one person per role and print how to sign in."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEMO_MODE:
            raise CommandError("The demo clinic has known passwords; set RELISTEN_DEMO_MODE=1 to "
                               "load it (never on a server with real clients).")
        if not Clinic.objects.filter(name=DEMO_CLINIC).exists():
            cast = build_cast(DEMO_PASSWORD)
            self.stdout.write("Loaded the demo clinic; transcribing its recorded session…")
            add_demo_recording(cast)
            add_demo_outcomes(cast)
            self.stdout.write("Done: Cora Client's session 1 is recorded, transcribed, commented "
                              "and rated; Tara's sessions are rated; four clients have "
                              "questionnaire histories.")
        rows = [(name, username, ", ".join(str(r.label) for r in roles))
                for _, username, name, roles in STAFF]
        rows += [("Cora Client", "cora.client", "Client of Tess"),
                 ("Colin Bright", "colin.client", "Client of Ben"),
                 ("Otto Vance", "otto.other", "Therapist and admin at another clinic")]
        self.stdout.write("\nDemo sign-ins at http://127.0.0.1:8000  (password for all: "
                          f"{DEMO_PASSWORD})")
        for name, username, role in rows:
            self.stdout.write(f"  {username:<18} {name:<14} {role}")
        if not settings.REQUIRE_MFA:
            self.stdout.write("Two-factor sign-in is optional in demo mode "
                              "(RELISTEN_REQUIRE_MFA=0).\n")

"""Test settings: production defaults (DEBUG off, MFA required) with throwaway secrets.

Environment variables set before pytest starts win, so `make test` can point the same suite
at PostgreSQL with RELISTEN_DATABASE_URL.
"""

import os

os.environ.setdefault("RELISTEN_SECRET_KEY", "test-only-secret-" + "k" * 50)
os.environ.setdefault("RELISTEN_AUDIT_KEY", "a1" * 32)
os.environ.setdefault("RELISTEN_HTTPS", "0")
os.environ.setdefault("RELISTEN_EMAIL", "memory")
os.environ.setdefault("RELISTEN_TASKS_BACKEND", "immediate")

from relisten.settings import *  # noqa: E402, F403
from relisten.settings import PASSWORD_HASHERS as PRODUCTION_HASHERS  # noqa: E402

# Test people are created by the hundred; a fast hasher first keeps the suite quick, while
# Argon2 stays configured (tests/test_signin_security.py checks production uses it).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PRODUCTION_HASHERS]

# No collectstatic in tests: serve app static files straight from the source tree.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

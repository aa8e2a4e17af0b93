"""Relisten settings: every knob is a RELISTEN_* environment variable (see .env.example).

Readers in relisten.lib.env fail loudly on bad values; this module only wires them into Django.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from relisten.lib.env import (
    SettingError,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_optional_str,
    env_path,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent
REPO_DIR = BASE_DIR.parent

try:
    DEBUG = env_bool("RELISTEN_DEBUG", False)
    DEMO_MODE = env_bool("RELISTEN_DEMO_MODE", False)
    DATA_DIR = env_path("RELISTEN_DATA_DIR", REPO_DIR / "var").resolve()
    _secret = env_optional_str("RELISTEN_SECRET_KEY")
    ALLOWED_HOSTS = env_list("RELISTEN_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
    _database_url = env_str("RELISTEN_DATABASE_URL", f"sqlite:///{DATA_DIR / 'relisten.sqlite3'}")
    HTTPS = env_bool("RELISTEN_HTTPS", not DEBUG)
    REQUIRE_MFA = env_bool("RELISTEN_REQUIRE_MFA", not DEMO_MODE)
    _idle_minutes = env_int("RELISTEN_SESSION_IDLE_MINUTES", 30, minimum=1, maximum=24 * 60)
    _failure_limit = env_int("RELISTEN_LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=100)
    _cooloff_minutes = env_int("RELISTEN_LOGIN_COOLOFF_MINUTES", 15, minimum=1, maximum=24 * 60)
    AUDIT_KEY_FILE = env_path("RELISTEN_AUDIT_KEY_FILE", DATA_DIR / "keys" / "audit.key")
    AUDIT_KEY_HEX = env_optional_str("RELISTEN_AUDIT_KEY")
    TASKS_BACKEND = env_choice(
        "RELISTEN_TASKS_BACKEND", "database", ("database", "rq", "immediate")
    )
    REDIS_URL = env_str("RELISTEN_REDIS_URL", "redis://127.0.0.1:6379/0")
    TIME_ZONE = env_str("RELISTEN_TIME_ZONE", "UTC")
    _log_level = env_choice("RELISTEN_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
    _email_backend = env_choice("RELISTEN_EMAIL", "console", ("console", "smtp", "memory"))
    EMAIL_HOST = env_str("RELISTEN_EMAIL_HOST", "localhost")
    EMAIL_PORT = env_int("RELISTEN_EMAIL_PORT", 25, minimum=1, maximum=65535)
    DEFAULT_FROM_EMAIL = env_str("RELISTEN_EMAIL_FROM", "relisten@localhost")
    # Questionnaire reminders (outcomes, SCHEDULE): SMTP sign-in and the address links point at.
    EMAIL_HOST_USER = env_str("RELISTEN_EMAIL_USER", "")
    EMAIL_HOST_PASSWORD = env_str("RELISTEN_EMAIL_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("RELISTEN_EMAIL_TLS", False)
    SITE_URL = env_str("RELISTEN_SITE_URL", "http://localhost:8000").rstrip("/")
    # Media vault (recordings): where encrypted objects live and where the KEKs are.
    MEDIA_STORAGE = env_choice("RELISTEN_MEDIA_STORAGE", "local", ("local", "s3"))
    MEDIA_DIR = env_path("RELISTEN_MEDIA_DIR", DATA_DIR / "media")
    UPLOAD_DIR = env_path("RELISTEN_UPLOAD_DIR", DATA_DIR / "uploads")
    S3_BUCKET = env_str("RELISTEN_S3_BUCKET", "relisten-media")
    S3_ENDPOINT_URL = env_optional_str("RELISTEN_S3_ENDPOINT_URL")
    S3_REGION = env_optional_str("RELISTEN_S3_REGION")
    S3_ACCESS_KEY_ID = env_optional_str("RELISTEN_S3_ACCESS_KEY_ID")
    S3_SECRET_ACCESS_KEY = env_optional_str("RELISTEN_S3_SECRET_ACCESS_KEY")
    KEK_FILE = env_path("RELISTEN_KEK_FILE", DATA_DIR / "keys" / "kek.json")
    KEK_TEXT = env_optional_str("RELISTEN_KEK")
    UPLOAD_MAX_BYTES = env_int("RELISTEN_UPLOAD_MAX_BYTES", 8 * 1024**3, minimum=1)
    UPLOAD_EXPIRY_HOURS = env_int("RELISTEN_UPLOAD_EXPIRY_HOURS", 24, minimum=1, maximum=24 * 30)
    # Transcription (faster-whisper, local only; models are never downloaded at run time).
    ASR_MODEL = env_str("RELISTEN_ASR_MODEL", "tiny.en")
    ASR_COMPUTE_TYPE = env_choice("RELISTEN_ASR_COMPUTE_TYPE", "int8",
                                  ("int8", "int8_float16", "int16", "float16", "float32"))
    ASR_BEAM_SIZE = env_int("RELISTEN_ASR_BEAM_SIZE", 1, minimum=1, maximum=10)
    ASR_THREADS = env_int("RELISTEN_ASR_THREADS", 0, minimum=0, maximum=256)
    ASR_LANGUAGE = env_str("RELISTEN_ASR_LANGUAGE", "en")
    ASR_DEVICE = env_choice("RELISTEN_ASR_DEVICE", "auto", ("auto", "cpu", "cuda"))
    DIARIZATION = env_choice("RELISTEN_DIARIZATION", "builtin", ("builtin", "pyannote", "off"))
    PYANNOTE_PIPELINE = env_optional_str("RELISTEN_PYANNOTE_PIPELINE")
    # A RUNNING transcription whose heartbeat is older than this is taken to have lost its
    # worker (killed, out of memory) and is queued again (relisten/transcripts/pipeline.py).
    TRANSCRIPT_STALE_S = env_int("RELISTEN_TRANSCRIPT_STALE_S", 120, minimum=2, maximum=86400)
except SettingError as error:
    raise ImproperlyConfigured(str(error)) from None

# Known placeholders that must never protect real data (compared case-insensitively).
_INSECURE_SECRETS = {
    "change-me", "changeme", "change_me", "secret", "relisten-dev-secret", "replace-me",
    "your-secret-key", "please-change-me",
}
_DEBUG_SECRET = "relisten-debug-only-" + "x" * 40
_MIN_SECRET_LENGTH = 50
_MIN_SECRET_UNIQUE_CHARACTERS = 5
_SECRET_HINT = (
    "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
)


def _secret_problem(secret: str | None) -> str | None:
    """Why this RELISTEN_SECRET_KEY cannot protect real data, or None if it can."""
    if secret is None:
        return "RELISTEN_SECRET_KEY is not set"
    lowered = secret.lower()
    if (lowered in _INSECURE_SECRETS or lowered.startswith("django-insecure")
            or secret == _DEBUG_SECRET or "change-me" in lowered or "changeme" in lowered):
        return "RELISTEN_SECRET_KEY is a placeholder value"
    if len(secret) < _MIN_SECRET_LENGTH:
        return f"RELISTEN_SECRET_KEY is too short (at least {_MIN_SECRET_LENGTH} characters)"
    if len(set(secret)) < _MIN_SECRET_UNIQUE_CHARACTERS:
        return "RELISTEN_SECRET_KEY is not random enough (too few different characters)"
    return None


def _secret_key() -> str:
    problem = _secret_problem(_secret)
    if problem is None:
        assert _secret is not None
        return _secret
    if DEBUG:
        # Debug/demo only: a fixed key is fine for a laptop demo, never for real data.
        return _secret if _secret is not None else _DEBUG_SECRET
    raise ImproperlyConfigured(
        f"{problem}. Outside debug mode Relisten refuses to start without a strong secret key; "
        f"{_SECRET_HINT} and set it as RELISTEN_SECRET_KEY."
    )


SECRET_KEY = _secret_key()

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "csp",
    "django_tasks",
    "django_tasks_db",
    "relisten.audit",
    "relisten.accounts",
    "relisten.clients",
    "relisten.consent",
    "relisten.core",
    "relisten.recordings",
    "relisten.transcripts",
    "relisten.review",
    "relisten.fidelity",
    "relisten.outcomes",
    "relisten.supervision",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "relisten.accounts.middleware.RequireMfaMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, so it sees failed logins raised anywhere above.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "relisten.urls"
WSGI_APPLICATION = "relisten.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "relisten.accounts.context.roles",
            ],
        },
    },
]


def _database(url: str) -> dict[str, Any]:
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=60))
    except ValueError as error:
        raise ImproperlyConfigured(
            f"RELISTEN_DATABASE_URL is not a database URL: {error}"
        ) from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets readers run beside the single writer; IMMEDIATE takes the write lock at BEGIN
        # so two writers wait (busy timeout) instead of failing halfway with "database is locked".
        config["CONN_MAX_AGE"] = 0
        if config["NAME"] not in ("", ":memory:"):
            Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                "PRAGMA busy_timeout=20000; PRAGMA foreign_keys=ON;"
            ),
        }
        config["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
    elif config["ENGINE"] == "django.db.backends.postgresql":
        config["ENGINE"] = "django.db.backends.postgresql"
    else:
        raise ImproperlyConfigured("RELISTEN_DATABASE_URL must be sqlite:/// or postgres://")
    return config


DATABASES = {"default": _database(_database_url)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# django-axes: lock the *account*, not the IP: a clinic behind one NAT address must not be
# locked out because one person mistyped a password five times.
AXES_FAILURE_LIMIT = _failure_limit
AXES_COOLOFF_TIME = timedelta(minutes=_cooloff_minutes)
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
# Our own lock-out page, so it can say in minutes how long the pause lasts.
AXES_LOCKOUT_CALLABLE = "relisten.accounts.views.locked_out"
# Tries during a lock-out do not restart the cool-off: the wait the page promises stays true.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_VERBOSE = False
# axes.W006 warns that username-only lockout ignores the IP. That is the point: per-account
# lock-out, so one clinic's shared NAT address cannot lock everyone out (docs/decisions.md).
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

# Idle expiry: the cookie's age is renewed on every request, so it lapses after idle minutes.
SESSION_COOKIE_AGE = _idle_minutes * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "media-src": [SELF, "blob:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

OTP_TOTP_ISSUER = "Relisten"

LANGUAGE_CODE = "en-gb"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# The package's own static files (app CSS, vendored JS) live beside settings, not in an app.
STATICFILES_DIRS = [BASE_DIR / "static"]
# In debug mode whitenoise serves straight from the app folders (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

if TASKS_BACKEND == "rq":
    RQ_QUEUES = {"default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600}}
    # rqworker must load jobs with django-tasks-rq's Job class: the stored job points at a
    # django-tasks Task object, which plain rq cannot call.
    RQ = {"JOB_CLASS": "django_tasks_rq.backend.Job"}
    INSTALLED_APPS.append("django_rq")
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
elif TASKS_BACKEND == "immediate":
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
else:
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

EMAIL_BACKEND = {
    "console": "django.core.mail.backends.console.EmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "memory": "django.core.mail.backends.locmem.EmailBackend",
}[_email_backend]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": _log_level},
    "loggers": {"axes": {"level": "WARNING"}},
}

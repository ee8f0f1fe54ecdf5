"""Settings, driven by environment variables (README: Configuration).

Defaults run a development checkout on SQLite with no configuration at all;
production values (SECRET_KEY, ENCRYPTION_KEYS, ALLOWED_HOSTS) are required
only when DEBUG is off.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_lazy as _

from crmsync_portal.lib import local_secrets
from crmsync_portal.lib.env import envbool, envint, envlist, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("VAR_DIR", str(BASE_DIR / "var")))

# DEBUG is off unless set. The development commands turn it on when it is not set: the run
# command (`manage.py runportal`, which `./portal run` runs) and the test suite. Their child
# processes (web server, worker, seed_demo) inherit it through the environment.
if "DEBUG" not in os.environ and (sys.argv[1:2] == ["runportal"] or "pytest" in sys.modules):
    os.environ["DEBUG"] = "true"
DEBUG = envbool("DEBUG", False)

SECRET_KEY = envstr("SECRET_KEY")
# Fernet keys, comma-separated; the first encrypts, all of them decrypt.
ENCRYPTION_KEYS = envlist("ENCRYPTION_KEYS")
if DEBUG and (not SECRET_KEY or not ENCRYPTION_KEYS):
    _generated = local_secrets.load_or_create(VAR_DIR / "local_secrets.json")
    SECRET_KEY = SECRET_KEY or _generated["SECRET_KEY"]
    ENCRYPTION_KEYS = ENCRYPTION_KEYS or [_generated["ENCRYPTION_KEYS"]]
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
if not ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "ENCRYPTION_KEYS must be set when DEBUG is off (generate one with: "
        'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())").'
    )

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
SITE_NAME = envstr("SITE_NAME", "CRM Sync Portal")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_rq",
    "axes",
    "crmsync_portal",
    "audit",
    "mailboxes",
    "crm",
    "syncjobs",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "clients",
    "selfservice",
    "monitoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Last, so that it sees the sign-in views' responses (django-axes' requirement).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "crmsync_portal.urls"
WSGI_APPLICATION = "crmsync_portal.wsgi.application"

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
                "crmsync_portal.context_processors.portal",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL lets the web server, workers and scheduler read while one of them writes.
    # A long commit (thousands of links) may hold the write lock for seconds: others wait for it.
    DATABASES["default"]["OPTIONS"] = {
        # WAL with synchronous=NORMAL: consistent after a crash, one fsync per checkpoint instead of per commit.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Tests use a file (one per test process) so that a worker in another process sees the data.
    DATABASES["default"]["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / f"crmsync-test-{os.getpid()}.sqlite3")}
elif DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A server that does not answer fails the connection (and /readyz) in seconds, not minutes.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", envint("DB_CONNECT_TIMEOUT", 10))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# /metrics for Prometheus: "Authorization: Bearer <METRICS_TOKEN>" (staff signed in need none); unset, no token works.
METRICS_TOKEN = envstr("METRICS_TOKEN")

# Redis: REDIS_URL, or the embedded server the run command starts.
REDIS_URL = envstr("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 300},
    "sync": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 900},
}
# Off: django-rq's copy of the dashboard inside the Django admin would let any staff user in.
# The dashboard is at /django-rq/, for superusers only (urls.py).
RQ_SHOW_ADMIN_LINK = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out user name or address before the password is checked.
    "crmsync_portal.auth.ThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
# The language follows the browser (Accept-Language) unless the user picks one in the footer.
LANGUAGES = [("en", _("English")), ("da", _("Danish"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Date and time formats per language, each with its time zone (crmsync_portal/formats/).
FORMAT_MODULE_PATH = ["crmsync_portal.formats"]
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_AGE = envint("SESSION_HOURS", 12) * 3600
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
# Load balancers probe over plain HTTP: no redirect to HTTPS for the health checks.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
# HSTS for subdomains and the browsers' preload list bind every site of the domain to HTTPS:
# the operator's choice (the variables above), not something `check --deploy` should nag about.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
# Behind a proxy that terminates TLS: the header by which it says the request came over HTTPS
# (for example X-Forwarded-Proto). Set it only if the proxy always sets or strips that header.
if _proxy_ssl_header := envstr("PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
# Scripts and styles only from the portal's own static files: no inline scripts or handlers.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# Behind a reverse proxy, the header that carries the client's address for the
# audit log (for example X-Forwarded-For); empty = use the socket's address.
CLIENT_IP_HEADER = envstr("CLIENT_IP_HEADER")
# How many proxies in front of the portal append to CLIENT_IP_HEADER: the client's address
# is the one the outermost of them added, the TRUSTED_PROXY_COUNT-th from the right.
TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", 1)

# Sign-in throttle (django-axes): after LOGIN_FAILURE_LIMIT failed sign-ins, that user name
# and, separately, that address are refused for LOGIN_COOLOFF_MINUTES; a success resets both.
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "audit.log.client_ip"
AXES_LOCKOUT_CALLABLE = "crmsync_portal.views.locked_out"
AXES_VERBOSE = False

PAGE_SIZE = envint("PAGE_SIZE", 50)

# Outgoing email: alerts (README: Monitoring and alerts), through Django's default mailer. With
# no EMAIL_HOST the messages go to the console (the log) instead, and the monitoring page says so.
_email_host = envstr("EMAIL_HOST")
_email_ssl = envbool("EMAIL_USE_SSL", False)  # TLS from the start (usually port 465)
_email_backend = envstr(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if _email_host else "django.core.mail.backends.console.EmailBackend",
)
MAILERS = {"default": {"BACKEND": _email_backend}}
if _email_backend == "django.core.mail.backends.smtp.EmailBackend":
    MAILERS["default"]["OPTIONS"] = {
        "host": _email_host or "localhost",
        "port": envint("EMAIL_PORT", 465 if _email_ssl else 587),
        "username": envstr("EMAIL_HOST_USER"),
        "password": envstr("EMAIL_HOST_PASSWORD"),
        "use_ssl": _email_ssl,
        "use_tls": envbool("EMAIL_USE_TLS", not _email_ssl),  # STARTTLS (usually port 587)
        "timeout": envint("EMAIL_TIMEOUT", 30),
    }
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "crm-sync-portal@localhost")
SERVER_EMAIL = envstr("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
# The address people open the portal at (https://crm-sync.example.com): alert emails link to it.
PORTAL_URL = envstr("PORTAL_URL")

# Where manage.py audit_prune writes the archives of the audit events it removes.
AUDIT_ARCHIVE_DIR = Path(envstr("AUDIT_ARCHIVE_DIR", str(VAR_DIR / "audit-archive")))

# The client API (/api/v1/, README: Client API): JSON only, Bearer tokens, {"error": ...} errors.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["clients.api.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["clients.api.parsers.LimitedJSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["clients.api.throttles.TokenRateThrottle"],
    # Counted in Django's default cache: the local-memory one, per process (clients/api/throttles.py).
    "DEFAULT_THROTTLE_RATES": {
        "client_token": envstr("CLIENT_API_RATE", "600/min"),
        "client_register": envstr("CLIENT_API_REGISTER_RATE", "20/hour"),
    },
    "EXCEPTION_HANDLER": "clients.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CRM Sync Portal client API",
    "DESCRIPTION": "What a desktop client uses: register an instance, ask to become the synchronizing "
    "instance, pull and push changes (offline replays too).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Vendored Swagger UI files (drf-spectacular-sidecar): no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# A pushed batch holds at most this many operations (413 beyond), in a body of at most this size.
CLIENT_API_MAX_OPERATIONS = envint("CLIENT_API_MAX_OPERATIONS", 500)
CLIENT_API_MAX_BODY_BYTES = envint("CLIENT_API_MAX_BODY_BYTES", 10 * 1024 * 1024)
# A pull returns at most this many changes; changes are sent again for this long after a pull
# (clients/feed.py: records committed late are not missed).
CLIENT_API_PAGE_SIZE = envint("CLIENT_API_PAGE_SIZE", 500)
CLIENT_API_OVERLAP_SECONDS = envint("CLIENT_API_OVERLAP_SECONDS", 60)
# Email channels (syncjobs/mail): a larger message is recorded as ignored, not tracked; incoming
# mailboxes are polled this often (seconds; 60 in development and the demo, 300 otherwise).
EMAIL_MAX_BYTES = envint("EMAIL_MAX_BYTES", 25 * 1024 * 1024)
EMAIL_POLL_INTERVAL = envint("EMAIL_POLL_INTERVAL", 30 if DEBUG else 300)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {
        "refusal_without_traceback": {"()": "crmsync_portal.logfilters.RefusalWithoutTraceback"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["refusal_without_traceback"],
        },
        "mail_admins": {
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "class": "django.utils.log.AdminEmailHandler",
        },
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        # Replaces Django's default handlers, which printed each of its records a second time
        # beside the root's console handler.
        "django": {"handlers": ["mail_admins"], "level": envstr("LOG_LEVEL", "INFO")},
        # django-axes logs every sign-in at INFO; lockouts and failures are WARNING.
        "axes": {"level": "WARNING"},
    },
}

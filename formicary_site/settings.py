"""Formicary settings: one module, driven by environment variables (django-environ).

Defaults give the standalone product: SQLite under ``FORMICARY_DATA_DIR`` (``./data``), in-process
messaging and channel layer, artifacts in a local folder. Set ``DATABASE_URL`` and ``REDIS_URL``
for the distributed deployment.
"""

from pathlib import Path

import environ

from formicary_site import keys

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    env.read_env(str(env_file))

DATA_DIR = Path(env.str("FORMICARY_DATA_DIR", default=str(BASE_DIR / "data")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
# Keys (formicary_site/keys.py, docs/security.md): from the environment, else the data folder's
# key files that standalone generates; any other process refuses to start without them.
_COMMAND = keys.command_name()
SECRET_KEY = keys.secret_key(env.str("SECRET_KEY", default=""), DATA_DIR, DEBUG, _COMMAND)
# Fernet key (urlsafe base64, 32 bytes) for secrets at rest, independent of SECRET_KEY.
FORMICARY_ENCRYPTION_KEY = keys.encryption_key(env.str("FORMICARY_ENCRYPTION_KEY", default=""), DATA_DIR, DEBUG,
                                               _COMMAND)  # fmt: skip
# Earlier keys, still accepted for decrypting until `manage.py rotate_keys` re-encrypts every row.
FORMICARY_ENCRYPTION_KEYS_OLD = env.list("FORMICARY_ENCRYPTION_KEYS_OLD", default=[])
for _old in FORMICARY_ENCRYPTION_KEYS_OLD:
    keys.check_fernet_key(_old, "FORMICARY_ENCRYPTION_KEYS_OLD")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "orgs",
    "jobs",
    "jobs.triggers",
    "ants",
    "artifacts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "orgs.audit.CurrentRequestMiddleware",  # who acts, for the audit records services write
]

ROOT_URLCONF = "formicary_site.urls"
APPEND_SLASH = False

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
                "orgs.web_permissions.can",
            ],
        },
    },
]

WSGI_APPLICATION = "formicary_site.wsgi.application"
ASGI_APPLICATION = "formicary_site.asgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'formicary.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["ENGINE"] = "formicary_site.sqlite"  # Django's, its rewrite of %s cached
    # WAL and immediate transactions let the web server, queen and ant threads of the
    # standalone process write without "database is locked" errors.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(DATA_DIR / "test.sqlite3")
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "orgs.User"
SITE_ID = 1

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
MEDIA_ROOT = Path(env.str("FORMICARY_ARTIFACTS_DIR", default=str(DATA_DIR / "artifacts")))

# --- Artifacts: the object store (artifacts/storage.py, ants/artifact_store.py) -----------------------
# A local folder (MEDIA_ROOT) by default; S3 or MinIO when FORMICARY_S3_BUCKET is set. Ants read the
# same variables, so one deployment config serves web, queen and ants.
FORMICARY_S3_BUCKET = env.str("FORMICARY_S3_BUCKET", default="")
FORMICARY_S3_ENDPOINT = env.str("FORMICARY_S3_ENDPOINT", default="")  # e.g. http://minio:9000
FORMICARY_S3_PREFIX = env.str("FORMICARY_S3_PREFIX", default="")
FORMICARY_S3_REGION = env.str("FORMICARY_S3_REGION", default="")
AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default="")
AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default="")
# <task>_ArtifactURL_<n> and the API's download_url: signed links that work without a token
FORMICARY_BASE_URL = env.str("FORMICARY_BASE_URL", default="http://localhost:7777")
FORMICARY_ARTIFACT_URL_TTL_SECS = env.int("FORMICARY_ARTIFACT_URL_TTL_SECS", default=3600)
# artifacts and logs without expires_after are kept this long (0: until deleted)
FORMICARY_ARTIFACT_DEFAULT_EXPIRY_DAYS = env.int("FORMICARY_ARTIFACT_DEFAULT_EXPIRY_DAYS", default=0)
# uploads beyond this go to a temporary file, never whole into memory
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
CELERY_BEAT_SCHEDULE = {
    "expire-artifacts": {"task": "artifacts.tasks.expire_artifacts", "schedule": 3600.0},
    "poll-triggers": {"task": "jobs.triggers.tasks.poll_triggers", "schedule": 5.0},  # docs/triggers.md
    # retention (jobs/services/retention.py): does nothing while FORMICARY_RETENTION_DAYS is 0
    "prune-history": {"task": "jobs.tasks.prune_history", "schedule": 3600.0},
}
# Finished requests (with their executions, tasks, logs and artifacts) are deleted this many days
# after their last change, hourly by Celery beat or by `manage.py prune` (0: kept forever).
FORMICARY_RETENTION_DAYS = env.int("FORMICARY_RETENTION_DAYS", default=0)
# --- end of artifacts ------------------------------------------------------------------------------

# --- Limits (formicary_site/body_limits.py, jobs/services/rate_limits.py) --------------------------
# Request bodies are refused with 413 before they are read: a definition is at most 1 MiB, a bulk
# submit of 1,000 requests about 200 KB. Artifact uploads stream to the store and may be larger.
FORMICARY_MAX_BODY_BYTES = env.int("FORMICARY_MAX_BODY_BYTES", default=2 * 1024 * 1024)
FORMICARY_MAX_ARTIFACT_BYTES = env.int("FORMICARY_MAX_ARTIFACT_BYTES", default=5 * 1024**3)
# what Django itself reads into memory (request.body, form fields) under any server, WSGI included
DATA_UPLOAD_MAX_MEMORY_SIZE = FORMICARY_MAX_BODY_BYTES
# Submits (POST /api/jobs/requests, .../bulk, the UI's submit) per organization: bursts of
# FORMICARY_SUBMIT_BURST calls, refilled at FORMICARY_SUBMIT_RATE (per s, m or h; "0": no limit).
# A bulk call counts once, however many requests it holds.
FORMICARY_SUBMIT_RATE = env.str("FORMICARY_SUBMIT_RATE", default="600/m")
FORMICARY_SUBMIT_BURST = env.int("FORMICARY_SUBMIT_BURST", default=100)
# --- end of limits ---------------------------------------------------------------------------------

# --- Web UI login (django-allauth): local accounts; GitHub and Google only when configured ----------
# GITHUB_CLIENT_ID/GITHUB_CLIENT_SECRET and GOOGLE_CLIENT_ID/GOOGLE_CLIENT_SECRET enable the buttons.
INSTALLED_APPS += [
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.google",
]
MIDDLEWARE += ["allauth.account.middleware.AccountMiddleware"]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
SOCIALACCOUNT_PROVIDERS: dict = {}
for _provider, _scope in (("github", ["read:user", "user:email"]), ("google", ["profile", "email"])):
    _client_id = env.str(f"{_provider.upper()}_CLIENT_ID", default="")
    _secret = env.str(f"{_provider.upper()}_CLIENT_SECRET", default="")
    if _client_id and _secret:
        SOCIALACCOUNT_PROVIDERS[_provider] = {
            "APP": {"client_id": _client_id, "secret": _secret, "key": ""},
            "SCOPE": _scope,
        }
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email", "username*", "password1*", "password2*"]
# standalone has no mail server: accounts work without confirming an address
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="none")
SOCIALACCOUNT_LOGIN_ON_GET = False
# --- end of web UI login -------------------------------------------------------------------------

# Messaging between queen and ants: Redis when REDIS_URL is set, else in-process (standalone).
REDIS_URL = env.str("REDIS_URL", default="")
# The method of a task whose definition names none: KUBERNETES as in the reference system;
# `manage.py standalone` uses SHELL unless this is set.
FORMICARY_DEFAULT_METHOD = env.str("FORMICARY_DEFAULT_METHOD", default="KUBERNETES").upper()
FORMICARY_REDIS_PREFIX = env.str("FORMICARY_REDIS_PREFIX", default="formicary")
# Encrypted queen <-> ant messages over Redis (docs/messaging.md): AES-GCM with a key per ant
# derived from FORMICARY_MESSAGE_KEY (a secret of 32+ characters on queens and web servers; an
# ant may hold its own derived key instead: `manage.py message_key --ant-id ID`).
FORMICARY_MESSAGE_ENCRYPTION = env.bool("FORMICARY_MESSAGE_ENCRYPTION", default=False)
FORMICARY_MESSAGE_KEY = keys.message_key(
    FORMICARY_MESSAGE_ENCRYPTION, env.str("FORMICARY_MESSAGE_KEY", default="")
)
# Tasks the queen may send ahead to a busy ant, per slot: they wait in its stream and start the
# moment a slot frees, with no round trip through the queen. At most FORMICARY_QUEEN_PREFETCH,
# and only as many as the slot runs in FORMICARY_QUEEN_PREFETCH_SECS at the pace of its last
# tasks (so a task sent ahead waits about that long at worst, and long tasks are never sent
# ahead). 0: only as many as free slots.
FORMICARY_QUEEN_PREFETCH = env.int("FORMICARY_QUEEN_PREFETCH", default=32)
FORMICARY_QUEEN_PREFETCH_SECS = env.float("FORMICARY_QUEEN_PREFETCH_SECS", default=0.1)
# The speed tricks of the queen's hot paths (jobs/fastsql.py): compiled loads, raw batch INSERTs
# and UPDATE ... RETURNING, psycopg's widened parse cache in the queen. false: the plain ORM.
FORMICARY_FAST_SQL = env.bool("FORMICARY_FAST_SQL", default=True)

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{FORMICARY_REDIS_PREFIX}:channels"},
        }
    }
else:
    # thread-safe: the standalone queen sends events from its own threads to the web server's loop
    CHANNEL_LAYERS = {"default": {"BACKEND": "formicary_site.channel_layers.ThreadSafeInMemoryChannelLayer"}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL

# --- Outbound: notifications, webhooks, metrics (docs/notifications.md) ---------------------------
# Notifications, webhooks and other outbound work run on Celery through the broker; without a
# broker (standalone) on a small in-process thread pool, never in the queen's loop.
FORMICARY_OUTBOUND_IN_PROCESS = env.bool("FORMICARY_OUTBOUND_IN_PROCESS", default=not REDIS_URL)
FORMICARY_OUTBOUND_ATTEMPTS = env.int(
    "FORMICARY_OUTBOUND_ATTEMPTS", default=5
)  # per email, Slack post or webhook
FORMICARY_OUTBOUND_RETRY_SECS = env.float("FORMICARY_OUTBOUND_RETRY_SECS", default=5.0)  # doubled per attempt
# Mail (notifications, invitations): smtp://user:password@host:port (smtp+tls://, smtp+ssl://);
# unset, mail is printed on the console.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="formicary@localhost")
# GET /api/metrics: Authorization: Bearer <this>, or a staff user's session or API token
FORMICARY_METRICS_TOKEN = env.str("FORMICARY_METRICS_TOKEN", default="")
# --- end of outbound ------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "orgs.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["orgs.permissions.HasPermission"],
    "DEFAULT_PAGINATION_CLASS": "formicary_site.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "orgs.schema.PermissionAutoSchema",
    "EXCEPTION_HANDLER": "formicary_site.exceptions.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        # ours: a nesting limit, no NaN, no lone surrogates or NUL characters (formicary_site/parsers.py)
        "formicary_site.parsers.JSONParser",
        "formicary_site.parsers.FormParser",
        "formicary_site.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Formicary API",
    "DESCRIPTION": "Jobs, job requests, ants and artifacts of the Formicary orchestrator.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # served from our static files: the product works offline
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

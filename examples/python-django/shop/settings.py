"""Settings of the example shop: the smallest Django project that tracks events."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
# auth for request.user; sessions in signed cookies, so the example needs no database.
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
DATABASES = {}
USE_TZ = True

# trackcore: keys are trackcore.Tracker keyword arguments.
TRACKCORE = {
    # None falls back to the INTERCOM_ACCESS_TOKEN environment variable.
    "access_token": os.environ.get("INTERCOM_ACCESS_TOKEN"),
    "region": os.environ.get("INTERCOM_REGION", "us"),
    # Point at the emulator (`trackcore-emulator`) instead of Intercom, e.g. http://127.0.0.1:8089
    "base_url": os.environ.get("TRACKCORE_BASE_URL") or None,
    "on_error": "shop.views.report_tracking_failure",
}

LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"trackcore": {"handlers": ["console"], "level": "WARNING"}},
}

"""Django 6 on the newest stack's Python, written the way Heroku's getting-started app is: whitenoise's
manifest storage (hashed static files, made by collectstatic at build time), ALLOWED_HOSTS depending on
DYNO, DEBUG off, SECRET_KEY from the environment."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("SECRET_KEY", "only-for-this-test")
IS_PLATFORM = "DYNO" in os.environ
DEBUG = False
ALLOWED_HOSTS = ["*"] if IS_PLATFORM else ["localhost", "127.0.0.1", "[::1]"]
INSTALLED_APPS = ["django.contrib.staticfiles"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "whitenoise.middleware.WhiteNoiseMiddleware"]
ROOT_URLCONF = "mysite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "mysite" / "templates"],
        "OPTIONS": {},
    }
]
WSGI_APPLICATION = "mysite.wsgi.application"
DATABASES = {}
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "mysite" / "static"]
STORAGES = {"staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}

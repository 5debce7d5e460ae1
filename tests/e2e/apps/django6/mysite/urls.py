import os
import sys

import django
from django.shortcuts import render
from django.urls import path


def index(request):
    context = {
        "django": django.get_version(),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "dyno": os.environ.get("DYNO", ""),
    }
    return render(request, "index.html", context)


urlpatterns = [path("", index)]

"""redis:* (Dokku's redis plugin): Redis servers with append-only persistence, linked to apps as REDIS_URL."""

from __future__ import annotations

from ..services import REDIS
from .services import commands_for

COMMANDS = commands_for(REDIS)

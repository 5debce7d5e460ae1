"""provisioner: turn a fresh Debian/Ubuntu server into a self-hosted mini-Heroku."""

__version__ = "0.1.0"

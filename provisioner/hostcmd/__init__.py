"""The program installed on hosts: git push deploys and app commands over the deploy user's SSH.

Standard library only (it runs on the host's own python3); every module is unit-tested by import.
"""

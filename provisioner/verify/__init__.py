"""`provisioner verify`: a testinfra suite, shipped with the package, that proves a host is what `up` makes.

checks.py holds the checks (pytest functions on testinfra's `host`), plugin.py their options, and run.py
runs them over SSH with pytest and reads the JUnit report back into per-host results.
"""

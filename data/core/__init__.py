"""Plumbing every stage uses: the project's errors, atomic output, the ``opt()`` settings, devices and
threads, progress."""

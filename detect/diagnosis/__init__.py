"""DETAD's error diagnosis of detections, and its browsable report.

The calls run one way, top to bottom:

- ``diagnose``: the entry points (a detections file or in-memory results against ground truth; several
  runs side by side) and the one writer of the JSON and the report;
- ``report``: the static HTML page (``report.css`` and ``report.js`` are inlined into it);
- ``charts``: its PNG charts;
- ``rules``: DETAD's rules themselves (false-positive types, sensitivity bins), on data frames.

The command is ``detect/diagnose_cli.py``; ``detect --diagnose`` and ``compare-methods --diagnose`` call
``diagnose`` too.
"""

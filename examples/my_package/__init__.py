"""The classes of docs/custom-energy.md, importable so that the page's recipe runs as written.

``PYTHONPATH=examples lightning-energy fit --config examples/centre.yaml`` from the repository
root; your own package takes this one's place. ``tests/docs/test_tutorial_example.py`` keeps the
page's code and these files the same.
"""

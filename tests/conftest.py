"""Shared pytest setup: make the server package importable without installing it."""

import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_REPO, "server"))
sys.path.insert(0, os.path.join(_REPO, "tests"))  # for the shared helpers in tests/media.py

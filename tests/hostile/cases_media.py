"""Hostile cases, round two: media. Registered into the corpus by importing this module."""

from __future__ import annotations

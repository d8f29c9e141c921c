"""Hostile cases, round two: pipeline. Registered into the corpus by importing this module."""

from __future__ import annotations

"""Exceptions a user can act on.

Every error raised at vidpose's edges (files, config, videos) is one of these, and its message
names the file, the row / frame / key, and what was expected, e.g.::

    LabelsError: CollectedData.csv row 14 (labeled-data/img13.png): 17 keypoints in the
    header but 16 coordinate pairs
"""

from __future__ import annotations


class VidposeError(Exception):
    """Base class of every error vidpose raises on purpose."""


class LabelsError(VidposeError):
    """A labels or predictions table is malformed."""


class ProjectError(VidposeError):
    """A project folder is unusable (missing files, inconsistent settings)."""


class VideoError(VidposeError):
    """A video cannot be opened or decoded."""


class ConfigError(VidposeError):
    """A configuration key is unknown, of the wrong type, or inconsistent."""


class ReaderUnavailableError(VideoError):
    """A requested video reader backend is not installed or cannot decode this video."""


class MissingDependencyError(VidposeError, ImportError):
    """An optional dependency is not installed; the message says how to install it."""


class OutputInUseError(VidposeError):
    """An output folder is held by another vidpose process (a batch prediction writing to it)."""

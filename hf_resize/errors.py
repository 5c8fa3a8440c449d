"""User-facing errors. Each names the fix; the CLI maps each class to its own exit code."""

from __future__ import annotations


class HFResizeError(Exception):
    """Base class for every error hf_resize raises on bad input."""

    exit_code = 10


class UnsupportedModelError(HFResizeError):
    """Unknown architecture, quantized or meta-device weights, NaN weights."""

    exit_code = 11


class ConfigError(HFResizeError):
    """Impossible ratio, unknown option, conflicting options."""

    exit_code = 12


class CalibrationError(HFResizeError):
    """Calibration data missing, too short, or not text."""

    exit_code = 13


class OutputExistsError(HFResizeError):
    """The output folder exists and --overwrite was not given, or cannot be written."""

    exit_code = 14


class DataUnavailableError(HFResizeError):
    """A built-in model or corpus could not be found or fetched."""

    exit_code = 15


class PushError(HFResizeError):
    """The Hub could not be reached or refused the upload."""

    exit_code = 16

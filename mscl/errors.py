"""Errors a user can cause. The CLI turns each into one line on stderr and exit code 2."""


class MsclError(Exception):
    """Base class of every error caused by user input (files, options, configs)."""

    exit_code: int = 2


class ConfigError(MsclError):
    """An experiment configuration is invalid; the message names every offending field."""


class DataError(MsclError):
    """An input image, label, manifest or dataset directory is missing, corrupt or inconsistent."""


class MemoryBackendError(MsclError):
    """A replay memory store cannot be opened, written or found."""


class MemoryCorrupted(MemoryBackendError):
    """A replay memory sample failed its checksum."""


class TrackingError(MsclError):
    """The MLflow tracking store is unreachable or holds something unexpected."""


class ArtifactCorrupted(TrackingError):
    """An artifact read back does not match the sha256 recorded when it was written (or has none)."""


class ResumePointCorrupted(MsclError):
    """A mid-stage resume point on disk does not match the sha256 written into it."""


class StudyInterrupted(MsclError):
    """Training was interrupted (Ctrl-C or SIGTERM); the runs were ended as KILLED and can be resumed."""

    exit_code = 130


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none: for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

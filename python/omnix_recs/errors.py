"""Domain exceptions: the one vocabulary of failure shared by stores, domain code and the API.

The server's exception interceptor maps each class to one gRPC status code (see
`api/interceptors.py`); the CLI prints the message and exits non-zero. Messages are written for
the caller: they name the offending field or row and never include internals.
"""

from __future__ import annotations


class OmnixError(Exception):
    """Base of every error the product raises on purpose."""


class InvalidArgumentError(OmnixError):
    """The caller's input is malformed. `field` names the offending field (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class NotFoundError(OmnixError):
    """A referenced entity does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class AlreadyExistsError(OmnixError):
    """Creating an entity whose key is taken."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} already exists")


class FailedPreconditionError(OmnixError):
    """The system is not in a state that allows the operation (e.g. no trained model yet)."""


class ModelFormatError(FailedPreconditionError):
    """A model artifact is missing, corrupt or of an unknown format version.

    A failed precondition, not an internal error: the request was sound and the server works,
    but the version it names cannot be served until it is rebuilt or uploaded again (retrying
    the same call will not help). Model holders catch it and keep the version they serve."""


class ConflictError(OmnixError):
    """A conditional write lost a race: the entity changed since it was read. Read again and
    retry (the API does so itself; a caller sees it only when retries keep losing)."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} was changed by another request at the same time; try again")


class ResourceExhaustedError(OmnixError):
    """A limit was hit (request too large, server overloaded)."""


class UnavailableError(OmnixError):
    """A dependency (database, cache, Bedrock) is unreachable; retrying later may succeed."""

"""OMNIX recommendations: a gRPC recommendation service for a supermarket, over a Rust core."""

from omnix_recs.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OmnixError,
    ResourceExhaustedError,
    UnavailableError,
)

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "NotFoundError",
    "OmnixError",
    "ResourceExhaustedError",
    "UnavailableError",
    "__version__",
]

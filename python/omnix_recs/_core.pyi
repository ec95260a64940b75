"""Type stubs for the Rust extension `omnix_recs._core` (hand-written; keep in step with rust_core).

Each section belongs to one Rust module (rust_core/src/<module>/).
"""

__version__: str

class CoreError(Exception): ...
class InvalidInputError(CoreError): ...
class ModelFormatError(CoreError): ...
class CoreIoError(CoreError): ...

# --- synth (rust_core/src/synth) -------------------------------------------------------------

# --- engine (rust_core/src/engine) -----------------------------------------------------------

# --- insights (rust_core/src/insights) -------------------------------------------------------

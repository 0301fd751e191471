"""The package's exception types: one base, one subclass per stage.

Messages name the bad value, what is allowed, and what to do next.
"""

from __future__ import annotations


class MlopsRayError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(MlopsRayError):
    """The pipeline spec (YAML) is invalid: the message names the file and the field."""


class RuntimeSetupError(MlopsRayError):
    """Ray or MLflow could not be reached or set up."""


class DataError(MlopsRayError):
    """The data stage could not read, validate or transform the input."""


class SchemaError(DataError):
    """The input does not match the declared schema as a whole (e.g. a required column is missing)."""


class TuneError(MlopsRayError):
    """The search could not be set up or did not produce a usable result."""


class SearchInterrupted(TuneError):
    """The search was stopped before it finished (Ctrl-C); its state is saved for ``--resume``."""


class SearchSpaceError(TuneError):
    """A search space in the config is malformed: the message names the parameter."""


class RegistryError(MlopsRayError):
    """Registering, loading or promoting a model failed."""


class GateRejected(RegistryError):
    """Raised only where a caller asked for a promotion to be enforced and the gate said no."""


class ServeError(MlopsRayError):
    """Deploying, routing or rolling back a served model failed."""


class MonitorError(MlopsRayError):
    """Prediction logs, feedback or drift computation could not proceed."""


class ClusterError(MlopsRayError):
    """Submitting to or talking with a Ray cluster failed."""

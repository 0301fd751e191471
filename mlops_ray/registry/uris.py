"""Model URIs, parsed once for every stage (pure: no MLflow import).

``models:/NAME/VERSION`` and ``models:/NAME@ALIAS`` are registry versions; a bare ``models:/NAME`` means the
champion, except MLflow 3's logged-model ids (``models:/m-<32 hex>``), which MLflow resolves itself. Any
other URI (``runs:/``, a model folder) passes through unparsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlops_ray.exceptions import RegistryError

DEFAULT_ALIAS = "champion"
_LOGGED_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model URI: registry name with version or alias, a logged-model id, or an opaque URI."""

    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    logged_model_id: str | None = None

    @property
    def registered(self) -> bool:
        return self.name is not None

    @property
    def effective_alias(self) -> str | None:
        """The alias to resolve: the one given, the champion for a bare name, None for a pinned version."""
        if not self.registered or self.version is not None:
            return None
        return self.alias or DEFAULT_ALIAS


def parse_model_uri(uri: str) -> ModelRef:
    """Split a model URI into name / version / alias (see the module docstring)."""
    if not uri or not uri.strip():
        raise RegistryError("model URI is empty; use models:/NAME@champion, models:/NAME/3 or a model folder")
    uri = uri.strip()
    if not uri.startswith("models:/"):
        return ModelRef(uri=uri)
    rest = uri[len("models:/"):].strip("/")
    if _LOGGED_MODEL_ID.fullmatch(rest):
        return ModelRef(uri=uri, logged_model_id=rest)
    m = re.fullmatch(r"([^/@]+)(?:@([^/@]+)|/(\d+))?", rest)
    if not m:
        raise RegistryError(f"model URI {uri!r} is not models:/NAME, models:/NAME/VERSION or models:/NAME@ALIAS")
    name, alias, version = m.groups()
    return ModelRef(uri=uri, name=name, version=version, alias=alias)

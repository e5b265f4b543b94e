"""Validation of the Snakemake workflow's config against its schemas (workflow/schemas/), with the train
config sections referenced as `iseat:train.schema.yaml#/...` and read from this installed package,
so a deployed workflow (snakedeploy, a copy of workflow/) needs no path into the source tree."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import jsonschema
import yaml
from referencing import Registry, Resource

from iseat.training.config import schema as train_schema

PACKAGE_URI = "iseat:"


def _retrieve(uri: str) -> Resource:
    """The package's schemas by `iseat:` name; other relative `$ref`s are files beside the schema."""
    if uri.startswith(PACKAGE_URI):
        name = uri[len(PACKAGE_URI) :]
        if name != "train.schema.yaml":
            raise jsonschema.exceptions.RefResolutionError(f"the iseat package has no schema {name!r}")
        return Resource.from_contents(train_schema())
    return Resource.from_contents(yaml.safe_load(Path(url2pathname(urlparse(uri).path)).read_text()))


def _with_defaults(validator_class):
    """A validator that also fills in each property's `default` (as snakemake.utils.validate does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def validate(instance, schema_path, set_default: bool = True) -> None:
    """Validate `instance` in place (defaults filled in) against the YAML schema at `schema_path`;
    raises jsonschema.ValidationError, whose `absolute_path` names the key."""
    path = Path(schema_path).resolve()
    schema = {**yaml.safe_load(path.read_text()), "$id": path.as_uri()}
    registry = Registry(retrieve=_retrieve).with_resource(path.as_uri(), Resource.from_contents(schema))
    validator = jsonschema.Draft202012Validator
    (_with_defaults(validator) if set_default else validator)(schema, registry=registry).validate(instance)

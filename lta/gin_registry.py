"""Imports every module that defines gin configurables, so files can parse."""

import importlib

CONFIGURABLE_MODULES = (
    "lta.model.config",
    "lta.peft.config",
    "lta.models",
)


def register_all() -> None:
  for name in CONFIGURABLE_MODULES:
    importlib.import_module(name)

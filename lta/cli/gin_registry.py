"""Where lta's gin files live, and the modules that define configurables.

Importing every such module lets any gin file parse.
"""

import importlib

from lta import GIN_DIR  # pylint: disable=unused-import  (re-exported)

CONFIGURABLE_MODULES = (
    "lta.models.mt5.config",
    "lta.models.decoder.config",
    "lta.models.bart.config",
    "lta.models.execution",
    "lta.adapters.config",
    "lta.models.contract",
    "lta.train.optimizers",
    "lta.partitioning",
    "lta.train.loop",
    "lta.data.vocab",
    "lta.data.decoder_only",
    "lta.jobs.merge",
    "lta.jobs.evaluate",
    "lta.pipeline.run",
    "lta_tasks",
)


def register_all() -> None:
  for name in CONFIGURABLE_MODULES:
    importlib.import_module(name)

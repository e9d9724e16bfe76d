"""The trainer tests' persistent XLA cache serves these processes too."""

from tests.trainer.conftest import CACHE_DIR  # noqa: F401  (sets the cache)

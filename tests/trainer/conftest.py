"""Trainer tests compile the same small programs in many runs and processes.

A persistent XLA compilation cache (keyed by the program, so never stale)
lets every run after the first skip compilation; subprocesses share it
through the environment.
"""

import os
import tempfile

import jax

CACHE_DIR = os.path.join(tempfile.gettempdir(), "lta_trainer_tests_xla_cache")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", CACHE_DIR)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
jax.config.update("jax_compilation_cache_dir",
                  os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)

"""Runs lta's entry points in a subprocess, as a user would (shared by tests).

A subprocess keeps their global gin and seqio state out of the test session.
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env() -> dict[str, str]:
  """The environment of an entry point run by a test: one CPU device."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
  env.pop("XLA_FLAGS", None)  # the 8 fake devices are for in-process tests
  return env


def run_module(module: str, args, timeout: int = 900,
               expect_ok: bool = True):
  """`python -m module args` on one CPU device; fails the test on error.

  With expect_ok=False a failing run is returned too, for its messages.
  """
  proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                        env=subprocess_env(), capture_output=True, text=True,
                        timeout=timeout)
  if expect_ok:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


def tiny_pipeline_flags(workdir, lambdas, examples):
  """A few steps of every stage: seconds of training, for plumbing tests."""
  return [f'--gin.PipelineConfig.workdir="{workdir}"',
          '--gin.PipelineConfig.world_preset="tiny"',
          "--gin.PipelineConfig.pretrain_steps=4",
          "--gin.PipelineConfig.task_steps=3",
          "--gin.PipelineConfig.language_steps=2",
          "--gin.PipelineConfig.batch_size=4",
          f"--gin.PipelineConfig.lambdas={tuple(lambdas)}",
          f"--gin.PipelineConfig.eval_examples={examples}"]

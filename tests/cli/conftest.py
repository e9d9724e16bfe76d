"""Leaves seqio's TFDS data dir as the test found it.

`--tfds_data_dir` sets seqio's global override, and each task's TFDS loader
keeps the first override it reads (seqio.utils.LazyTfdsLoader.data_dir), so
a test that runs a command with the flag would point later tests' tasks at
its directory (and earlier tests may have done so to this one).
"""

import sys

import pytest


def _forget_tfds_data_dirs() -> None:
  seqio = sys.modules.get("seqio")
  if seqio is None:
    return
  seqio.set_tfds_data_dir_override(None)
  for name in seqio.TaskRegistry.names():
    source = seqio.TaskRegistry.get(name).source
    if isinstance(source, seqio.TfdsDataSource):
      source.tfds_dataset.override_data_dir(None)


@pytest.fixture(autouse=True)
def _restore_tfds_data_dir():
  _forget_tfds_data_dirs()  # also what earlier tests left
  yield
  _forget_tfds_data_dirs()

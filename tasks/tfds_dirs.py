"""Where prepared data lives: the TFDS data directory, resolved as T5X does.

`--tfds_data_dir` (seqio's data-dir override, set by the `lta` commands)
wins, then the TFDS_DATA_DIR environment variable, then TFDS's default
(~/tensorflow_datasets). XL-Sum and TyDi QA are TFDS datasets there, and
`lta prepare-data` writes its mC4 shard index there too.
"""

from typing import Optional

import seqio
from tensorflow_datasets.core import constants


def tfds_data_dir(explicit: Optional[str] = None) -> str:
  """`explicit`, else seqio's override, TFDS_DATA_DIR or TFDS's default."""
  if explicit:
    return explicit
  override = seqio.utils._TFDS_DATA_DIR_OVERRIDE  # pylint: disable=protected-access
  return override or constants.get_default_data_dir()

"""`lta merge` / `python -m lta.main.merge`: gin flags in, a composed adapter out.

  lta merge --gin_file=runs/merge.gin \\
    --gin.run_merge.output_dir=\\"/tmp/pt_add_sub\\" \\
    --gin.run_merge.composition=\\"lang_task_add_subtract\\" \\
    --gin.run_merge.target=\\"pt\\" --gin.run_merge.sources="['en']" \\
    --gin.run_merge.lam=0.7 \\
    --gin.run_merge.task_vectors="{'en': '/runs/task_en/adapter'}" \\
    --gin.run_merge.language_vectors="{'en': '/runs/lang_en/adapter', \\
        'pt': '/runs/lang_pt/adapter'}"

--overwrite replaces the adapter (and model) of a non-empty output_dir, like
--gin.run_merge.overwrite=True.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from lta import gin_cli
from lta import merge_job

OVERWRITE_FLAG = "--overwrite"


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  overwrite = OVERWRITE_FLAG in argv
  gin_cli.parse_and_configure([a for a in argv if a != OVERWRITE_FLAG])
  merge_job.run_merge(**({"overwrite": True} if overwrite else {}))
  return 0


if __name__ == "__main__":
  sys.exit(main())

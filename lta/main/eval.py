"""`lta eval` / `python -m lta.main.eval`: decode and score, write tables.

  lta eval --gin_file=runs/eval.gin \\
    --gin.run_eval.output_dir=\\"/tmp/eval_pt\\" \\
    --gin.run_eval.base_checkpoint=\\"/data/mt5-base\\" \\
    --gin.run_eval.tasks="['xlsum.pt', 'xlsum.uk']" \\
    --gin.run_eval.composition=\\"lang_task_add_subtract\\" \\
    --gin.run_eval.sources="['en']" --gin.LAMBDA="[0.3, 0.5, 0.7]" ...

See gin/runs/eval.gin for every binding.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from lta import eval_job
from lta import gin_cli


def main(argv: Optional[Sequence[str]] = None) -> int:
  gin_cli.parse_and_configure(sys.argv[1:] if argv is None else argv)
  eval_job.run_eval()
  return 0


if __name__ == "__main__":
  sys.exit(main())

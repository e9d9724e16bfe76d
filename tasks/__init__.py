"""SeqIO tasks and mixtures of lta; importing this package registers them.

Installed as `lta_tasks`. Task names:
  xlsum.<lang>, xlsum_eval.<lang>            XL-Sum, 45 languages
  tydiqa_goldp.<lang>, tydiqa_goldp_dev.<lang>  TyDi QA GoldP, 9 languages
  xquad.<lang>, xquad_eval.<lang>            XQuAD, 11 languages (from SQuAD)
  mc4_prefix_lm.<lang>                       mC4 prefix-LM, every mC4 language
  synthetic_qa.<lang>, synthetic_qa_prompt.<lang>  the synthetic world's QA
  xlsum_prompt.*, tydiqa_goldp_prompt.*,     the same as prompt -> answer for
  mc4_decoder_prefix_lm.<lang>               decoder-only models (decoder_only)
Mixtures: xlsum_seen, xlsum_zeroshot, tydiqa_goldp_zeroshot, xquad_zeroshot,
and the companion-study mixtures of `lta_tasks.mixtures`. `lta_tasks.prepare`
(the `lta prepare-data` command) prepares their data; `lta_tasks.xquad.
prepare` writes SQuAD and XQuAD offline from their release files.
"""

from . import decoder_only
from . import mc4
from . import mixtures
from . import synthetic_qa
from . import tydiqa
from . import tydiqa_builder
from . import xlsum
from . import xquad

"""lta.data.task_names reads back the names lta_tasks registers."""

import pytest
import seqio

from lta import errors
from lta.data import task_names
from lta_tasks import mc4
from lta_tasks import mixtures
from lta_tasks import tydiqa
from lta_tasks import xlsum


@pytest.mark.parametrize("name,family,language", [
    (xlsum.task_name("pt"), "xlsum", "pt"),
    (xlsum.eval_task_name("pt"), "xlsum_eval", "pt"),
    (tydiqa.dev_task_name("fi"), "tydiqa_goldp_dev", "fi"),
    (mc4.task_name("ru-Latn"), "mc4_prefix_lm", "ru_Latn"),
    (mixtures.target_lm_mixture_name("xlsum", "en", ["pt"]),
     "xlsum_target_lm", "pt"),
    ("xlsum_seen", "xlsum_seen", ""),
])
def test_family_and_language_of_registered_names(name, family, language):
  assert name in set(seqio.TaskRegistry.names()) | set(
      seqio.MixtureRegistry.names())
  assert task_names.family_and_language(name) == (family, language)
  assert task_names.family(name) == family


def test_a_name_without_language_is_refused_where_one_is_needed():
  assert task_names.language("xlsum.pt") == "pt"
  with pytest.raises(errors.ConfigError, match="'xlsum_seen' has no"):
    task_names.language("xlsum_seen")

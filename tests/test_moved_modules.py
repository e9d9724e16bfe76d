"""Modules that moved in the layered layout still import, with a warning."""

import importlib
import subprocess
import sys
import warnings

import gin
import pytest

import lta


def test_every_old_name_imports_the_module_at_its_new_place():
  for old, new in lta.MOVED.items():
    sys.modules.pop(old, None)
    with pytest.warns(FutureWarning, match=f"{old} moved to {new}"):
      module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_old_names_stay_out_of_lta_itself():
  # A module in lta/ that used an old name would warn on every import.
  code = ("import warnings; warnings.simplefilter('error', FutureWarning); "
          "import lta.api, lta.cli.main, lta.jobs.miniature, lta.jobs.sweep, "
          "lta.jobs.report, lta.cli.gin_registry as r; r.register_all()")
  subprocess.run([sys.executable, "-c", code], check=True,
                 capture_output=True, text=True)


def test_a_gin_file_importing_an_old_module_still_parses(tmp_path, clean_gin):
  del clean_gin
  path = tmp_path / "old.gin"
  path.write_text("import lta.optimizers\n"
                  "make_optimizer.weight_decay = 0.5\n")
  sys.modules.pop("lta.optimizers", None)
  with pytest.warns(FutureWarning, match="lta.optimizers moved to "
                    "lta.train.optimizers"):
    gin.parse_config_file(str(path))
  assert gin.query_parameter("make_optimizer.weight_decay") == 0.5


def test_python_m_with_an_old_module_name_runs_the_command():
  done = subprocess.run([sys.executable, "-m", "lta.main.cli", "--help"],
                        capture_output=True, text=True, check=True)
  assert "usage: lta COMMAND" in done.stdout
  assert "lta.main.cli moved to lta.cli.main" in done.stderr

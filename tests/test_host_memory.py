"""lta.host_memory: after `import lta`, a jitted program's temporaries reuse
the last call's pages (no page faults); LTA_HOST_MALLOC=system restores
glibc's default, which faults them in on every call."""

import json
import os
import subprocess
import sys

import pytest

from lta import errors
from lta import host_memory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Two 64 MB float32 temporaries a call (each read by a dot, so kept apart).
PROGRAM = """
import json, resource, time
import lta, jax, jax.numpy as jnp
f = jax.jit(lambda x, w: (jnp.sin(x) @ w).sum() + (jnp.cos(x) @ w).sum())
x, w = jnp.ones((4096, 4096)), jnp.ones((4096, 1))
faults = []
for _ in range(10):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  f(x, w).block_until_ready()
  time.sleep(0.2)  # let the runtime free this call's temporaries
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(faults[1:]))
"""


def _faults_per_call(choice):
  env = dict(os.environ, JAX_PLATFORMS="cpu", LTA_HOST_MALLOC=choice)
  out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, cwd=REPO,
                       capture_output=True, text=True, check=True).stdout
  return json.loads(out.splitlines()[-1])


@pytest.mark.skipif(not host_memory.supported(),
                    reason="needs Linux with glibc")
def test_temporaries_reuse_pages_after_import_lta():
  page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
  system = _faults_per_call("system")
  keep = _faults_per_call("keep")
  # glibc's default maps the temporaries afresh on every call; kept, the
  # heap grows for a few calls (a call's temporaries are freed by another
  # thread, sometimes after the next call has allocated) and then faults
  # in nothing.
  assert min(system) * page_mb > 64, system
  assert sum(keep[-3:]) * page_mb < 4, keep


RELEASE = """
import json
import numpy as np
import lta
from lta import host_memory
def resident_mb():
  return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
chunks = [np.ones(2**20 * 8, np.float32) for _ in range(16)]  # 16 x 32 MB
keep = chunks[-1]  # the heap's top stays in use: only holes remain to free
del chunks
freed = resident_mb()
released = host_memory.release_free_memory()
print(json.dumps([freed, resident_mb(), released]))
"""


@pytest.mark.skipif(not host_memory.supported(),
                    reason="needs Linux with glibc")
def test_free_memory_is_kept_until_released():
  env = dict(os.environ, LTA_HOST_MALLOC="keep")
  out = subprocess.run([sys.executable, "-c", RELEASE], env=env, cwd=REPO,
                       capture_output=True, text=True, check=True).stdout
  freed, released, said = json.loads(out.splitlines()[-1])
  # Kept: 15 freed chunks (480 MB) stay resident until released.
  assert freed - released > 400 and said, (freed, released)


def test_an_unknown_choice_is_a_one_line_error(monkeypatch):
  monkeypatch.setenv("LTA_HOST_MALLOC", "sytem")
  with pytest.raises(errors.ConfigError,
                     match=r"LTA_HOST_MALLOC='sytem'.*did you mean 'system'"):
    host_memory.keep_freed_memory()


def test_lta_stops_on_an_unknown_choice_and_import_only_warns():
  env = dict(os.environ, LTA_HOST_MALLOC="keeep")
  proc = subprocess.run([sys.executable, "-m", "lta.cli.main", "train"],
                        env=env, cwd=REPO, capture_output=True, text=True,
                        timeout=120, check=False)
  assert proc.returncode == 2, proc.stderr
  # The import's warning, then the command's one-line error.
  assert proc.stderr.strip().splitlines()[-1] == (
      "lta: LTA_HOST_MALLOC='keeep'; expected one of 'keep', 'system' "
      "(did you mean 'keep'?)")
  proc = subprocess.run(
      [sys.executable, "-W", "error::UserWarning", "-c", "import lta"],
      env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
      check=False)
  assert "malloc left as it is" in proc.stderr

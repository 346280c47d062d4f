"""CoolColor: text-guided, temporally coherent colorization of black-and-white film.

Heavy modules (torch, diffusers) are imported by the submodules that need them, so that
``import coolcolor`` and the CLI's ``--help`` stay fast.
"""

__version__ = "0.1.0"

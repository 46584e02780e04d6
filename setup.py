"""Builds the optional C kernel `dogesim.engine._kernel`; the metadata is in setup.cfg.

Without a C compiler the build of the extension is skipped and the engine runs its Python
loops (`dogesim.engine.kernel`).
"""

from __future__ import annotations

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dogesim.engine._kernel",
            sources=["dogesim/engine/_kernel.c"],
            optional=True,
        )
    ]
)

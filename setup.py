"""Build the optional C kernel for exact, fast area resizing.

Everything else lives in pyproject.toml. The extension is optional: without a C compiler the
package installs and falls back to OpenCV (identical output, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gan_envs._ext.area_resize",
            sources=["gan_envs/_ext/area_resize.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)

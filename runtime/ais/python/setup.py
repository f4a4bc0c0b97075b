"""Builds libkforge_ais.so from ../kf_ais.c next to the package (see pyproject.toml)."""
import os
import shlex
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
C_DIR = os.path.normpath(os.path.join(HERE, ".."))
C_SRC = os.path.join(C_DIR, "kf_ais.c")


class BuildPyWithLibrary(build_py):
    """build_py, then `cc -O2 -fPIC -shared -ffp-contract=off kf_ais.c -lm` into the package.
    -ffp-contract=off keeps kf_ais_exp's operation order (the torch code reproduces it)."""

    def run(self):
        super().run()
        if not os.path.isfile(C_SRC):
            sys.exit(f"kforge-ais: {C_SRC} not found; install from a kforge checkout "
                     f"(runtime/ais/python with runtime/ais/kf_ais.c beside it)")
        out_dir = os.path.join(self.build_lib, "kforge_ais")
        os.makedirs(out_dir, exist_ok=True)
        cc = shlex.split(os.environ.get("CC", "cc"))
        cmd = cc + ["-O2", "-std=gnu11", "-fPIC", "-shared", "-ffp-contract=off", "-I", C_DIR,
                    C_SRC, "-o", os.path.join(out_dir, "libkforge_ais.so"), "-lm"]
        print("kforge-ais:", " ".join(cmd))
        subprocess.check_call(cmd)


class BinaryDistribution(Distribution):
    """The wheel holds a shared library, so it is platform-specific."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=BinaryDistribution)

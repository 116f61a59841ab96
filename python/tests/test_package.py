"""python/ as a package: it builds and installs without network (``pip install
--no-deps --no-build-isolation --no-index --target DIR``), imports and runs as a
worker from there, ships ``py.typed`` (a user's typed handlers check against it
with mypy --strict), and carries package.json's version.

The build needs pip and setuptools >= 77 (pyproject.toml's SPDX license string):
the interpreter is ``$PYVISOR_PACKAGE_PYTHON``, else ``.venv/bin/python`` (made
from python/requirements-dev.txt by scripts/run-tests.mjs), else this one. With
none of them able to build, the tests skip with the reason -- unless ``CI=true``
or ``PYVISOR_PACKAGE_TESTS=require``: then that is a failure (CI prepares .venv).
The build runs on a copy of python/, so nothing (``build/``, ``*.egg-info``) is
left in the shipped folder.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

from . import helpers
from .helpers import PY_DIR, ROOT, WorkerTestCase

import pyvisor

REQUIRED = (os.environ.get("CI", "").lower() == "true"
            or os.environ.get("PYVISOR_PACKAGE_TESTS", "").lower() == "require")
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
MIN_SETUPTOOLS = (77,)

_PROBE = ("import importlib.util, setuptools; "
          "assert importlib.util.find_spec('pip') is not None, 'no pip'; "
          "print(setuptools.__version__); "
          "print(importlib.util.find_spec('mypy') is not None)")


def _version_tuple(text):
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _find_builder():
    """``(python, has_mypy, None)`` for the first interpreter that can build the
    package, else ``(None, False, reasons)``."""
    if os.environ.get("PYVISOR_PACKAGE_PYTHON"):
        candidates = [os.environ["PYVISOR_PACKAGE_PYTHON"]]
    else:
        candidates = [VENV_PYTHON, sys.executable]
    reasons = []
    for py in candidates:
        if not os.path.exists(py):
            reasons.append("%s does not exist" % py)
            continue
        try:
            r = subprocess.run([py, "-c", _PROBE], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            reasons.append("%s: %s" % (py, e))
            continue
        if r.returncode != 0:
            reasons.append("%s lacks pip or setuptools (%s)"
                           % (py, (r.stderr.strip().splitlines() or ["?"])[-1]))
            continue
        version, mypy = r.stdout.split()
        if _version_tuple(version) < MIN_SETUPTOOLS:
            reasons.append("%s has setuptools %s (< 77)" % (py, version))
            continue
        return py, mypy == "True", None
    return None, False, "; ".join(reasons)


BUILDER, BUILDER_HAS_MYPY, NO_BUILDER = _find_builder()


def package_json_version():
    with open(os.path.join(ROOT, "package.json"), encoding="utf-8") as f:
        return json.load(f)["version"]


def pyproject():
    """``python/pyproject.toml`` as a dict (tomllib, Python >= 3.11), or its text."""
    path = os.path.join(PY_DIR, "pyproject.toml")
    try:
        import tomllib
    except ImportError:
        with open(path, encoding="utf-8") as f:
            return f.read()
    with open(path, "rb") as f:
        return tomllib.load(f)


def pyproject_version():
    data = pyproject()
    if isinstance(data, dict):
        return data["project"]["version"]
    m = re.search(r'(?m)^version\s*=\s*"([^"]+)"', data)
    return m.group(1) if m else None


def _modules(root):
    """The ``.py`` files under ``root``, as paths relative to it."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        out.extend(os.path.relpath(os.path.join(d, f), root) for f in files if f.endswith(".py"))
    return sorted(out)


def _unavailable(test):
    """Skip (or, when required, fail) a test that needs a builder."""
    if BUILDER is not None:
        return None
    message = "no interpreter here can build the package: %s" % NO_BUILDER
    if REQUIRED:
        test.fail(message + " (required: CI=true or PYVISOR_PACKAGE_TESTS=require)")
    test.skipTest(message)


class TestMetadata(unittest.TestCase):
    """What needs no build."""

    def test_versions_agree(self):
        want = package_json_version()
        self.assertEqual(pyproject_version(), want, "pyproject.toml [project] version")
        self.assertEqual(pyvisor.__version__, want, "pyvisor.__version__")

    def test_py_typed_is_there(self):
        self.assertTrue(os.path.isfile(os.path.join(PY_DIR, "pyvisor", "py.typed")))

    def test_extras_carry_the_requirements_pins(self):
        data = pyproject()
        if not isinstance(data, dict):
            self.skipTest("tomllib needs Python >= 3.11")
        with open(os.path.join(PY_DIR, "requirements-dspy.txt"), encoding="utf-8") as f:
            pins = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        extras = data["project"]["optional-dependencies"]
        self.assertEqual(extras["dspy"], pins)
        self.assertEqual(extras["msgpack"], [p for p in pins if p.startswith("msgpack")])
        self.assertEqual(data["project"]["requires-python"], ">=3.9")
        self.assertEqual(data["project"]["dependencies"], [])


class TestInstalled(WorkerTestCase):
    """One offline build and install into a temporary directory for the class."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = None
        cls.install = None
        if BUILDER is None:
            return
        cls.tmp = tempfile.mkdtemp(prefix="pyvisor-package-")
        src = os.path.join(cls.tmp, "src")
        os.mkdir(src)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(os.path.join(PY_DIR, name), src)
        shutil.copytree(os.path.join(PY_DIR, "pyvisor"), os.path.join(src, "pyvisor"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        cls.target = os.path.join(cls.tmp, "target")
        cmd = [BUILDER, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
               "--no-index", "--disable-pip-version-check", "--no-input", "--target",
               cls.target, src]
        try:
            cls.install = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                                         cwd=cls.tmp)
        except subprocess.TimeoutExpired as e:
            cls.install = e

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if cls.tmp is not None:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        super().setUp()
        _unavailable(self)
        r = self.install
        if isinstance(r, subprocess.TimeoutExpired):
            self.fail("pip install did not finish within 300 s")
        if r.returncode != 0:
            self.fail("pip install --target failed (exit %d):\n%s"
                      % (r.returncode, (r.stdout + r.stderr)[-3000:]))

    def installed(self, *parts):
        return os.path.join(self.target, *parts)

    def run_python(self, code, python=None):
        """``code`` in an isolated interpreter (no PYTHONPATH, no cwd on sys.path)
        that sees the install only."""
        prelude = "import sys; sys.path.insert(0, %r)\n" % self.target
        r = subprocess.run([python or sys.executable, "-I", "-c", prelude + code],
                           capture_output=True, text=True, timeout=60, cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_the_package_and_only_the_package(self):
        self.assertTrue(os.path.isfile(self.installed("pyvisor", "py.typed")))
        self.assertEqual(_modules(self.installed("pyvisor")),
                         _modules(os.path.join(PY_DIR, "pyvisor")),
                         "every module of python/pyvisor (subpackages too) is installed")
        top = set(os.listdir(self.target))
        for absent in ("dspy_bridge.py", "tests", "tools"):
            self.assertNotIn(absent, top)

    def test_metadata(self):
        version = package_json_version()
        info = self.installed("pyvisor-%s.dist-info" % version, "METADATA")
        self.assertTrue(os.path.isfile(info), "no %s (versions: %s)" % (
            info, [d for d in os.listdir(self.target) if d.endswith(".dist-info")]))
        with open(info, encoding="utf-8") as f:
            meta = f.read()
        self.assertRegex(meta, r"(?m)^Name: pyvisor$")
        self.assertRegex(meta, r"(?m)^Version: %s$" % re.escape(version))
        self.assertRegex(meta, r"(?m)^Requires-Python: >=3\.9$")
        self.assertRegex(meta, r"(?m)^License-Expression: MIT$")
        self.assertRegex(meta, r"(?m)^Provides-Extra: dspy$")
        self.assertRegex(meta, r"(?m)^Provides-Extra: msgpack$")
        self.assertRegex(meta, r"(?m)^Requires-Dist: dspy==3\.4\.1; extra == \"dspy\"$")

    def test_import_from_the_install(self):
        out = self.run_python(textwrap.dedent("""
            import json, importlib.metadata
            import pyvisor, pyvisor.codec, pyvisor.bootstrap, pyvisor.typed_args
            from pyvisor import Context, command, on_cleanup, on_stats
            print(json.dumps({"file": pyvisor.__file__, "version": pyvisor.__version__,
                              "dist": importlib.metadata.version("pyvisor"),
                              "codec": pyvisor.codec.NAME}))
        """))
        got = json.loads(out)
        self.assertTrue(got["file"].startswith(self.target + os.sep), got["file"])
        self.assertEqual(got["version"], package_json_version())
        self.assertEqual(got["dist"], package_json_version())

    def test_worker_runs_from_the_install(self):
        w = self.spawn(script=helpers.GENERIC, cwd=self.tmp, mode=None,
                       env={"PYTHONPATH": self.target})
        r = w.call("ping")
        self.assertIs(r["pong"], True)
        self.assertEqual(w.call("get_stats")["worker_id"], "w_test")

    def test_typed_handlers_check_against_the_install(self):
        """py.typed in use: mypy --strict finds pyvisor in the install (no stub
        hint needed), accepts typed handlers and hooks, and refuses a misuse."""
        if not BUILDER_HAS_MYPY:
            message = "%s has no mypy (python/requirements-dev.txt installs it)" % BUILDER
            if REQUIRED:
                self.fail(message)
            self.skipTest(message)
        user = os.path.join(self.tmp, "user")
        os.makedirs(user, exist_ok=True)
        with open(os.path.join(user, "good_handlers.py"), "w") as f:
            f.write(textwrap.dedent("""
                from __future__ import annotations

                from dataclasses import dataclass
                from typing import Any, Callable, Dict, Iterator, Optional

                from pyvisor import Context, command, on_cleanup, on_stats


                @dataclass
                class GreetArgs:
                    name: str


                @dataclass
                class GreetResult:
                    text: str
                    left: Optional[float]


                @command("greet")
                def greet(args: GreetArgs, ctx: Context) -> GreetResult:
                    n: int = ctx.session.get("n", 0)
                    ctx.session["n"] = n + 1
                    ctx.log("greeting", level="debug", name=args.name)
                    return GreetResult("%s from %s" % (args.name, ctx.worker_id), ctx.remaining())


                @command
                def bare(args: Dict[str, int], ctx: Context) -> int:
                    return len(args) + ctx.pid


                @command()
                async def later(args: GreetArgs, ctx: Context) -> str:
                    return args.name if not ctx.cancelled else ""


                @command("ticks", replace=True)
                def ticks(args: GreetArgs, ctx: Context) -> Iterator[int]:
                    yield from range(3)


                @on_cleanup
                def free(session_id: str, session: Dict[str, Any]) -> Dict[str, int]:
                    return {"freed": len(session)}


                @on_stats
                def stats(sessions: Dict[str, Dict[str, Any]]) -> Optional[Dict[str, int]]:
                    return {"sessions": len(sessions)}


                # decorating keeps each function's type
                keep_greet: Callable[[GreetArgs, Context], GreetResult] = greet
                keep_bare: Callable[[Dict[str, int], Context], int] = bare
            """))
        with open(os.path.join(user, "bad_handlers.py"), "w") as f:
            f.write(textwrap.dedent("""
                from pyvisor import Context, command


                @command("greet")
                def greet(args: str, ctx: Context) -> str:
                    return ctx.worker_idd + args


                wrong: int = greet
            """))
        env = dict(os.environ, PYTHONPATH=self.target)
        env.pop("MYPYPATH", None)
        base = [BUILDER, "-m", "mypy", "--strict", "--python-version", "3.9",
                "--no-incremental", "--cache-dir", os.devnull]
        good = subprocess.run(base + ["good_handlers.py"], capture_output=True, text=True,
                              timeout=300, cwd=user, env=env)
        self.assertEqual(good.returncode, 0, good.stdout + good.stderr)
        self.assertIn("Success: no issues found in 1 source file", good.stdout)
        bad = subprocess.run(base + ["bad_handlers.py"], capture_output=True, text=True,
                             timeout=300, cwd=user, env=env)
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        self.assertIn('"Context" has no attribute "worker_idd"', bad.stdout)
        self.assertIn('Incompatible types in assignment (expression has type '
                      '"Callable[[str, Context], str]", variable has type "int")', bad.stdout)


if __name__ == "__main__":
    unittest.main()

"""Background imports while a stage's subprocess runs (flows.warm)."""

from __future__ import annotations

import subprocess
import sys

from flows import warm


def test_warm_imports_a_module_in_the_background_and_skips_loaded_ones() -> None:
    script = (
        "import sys\n"
        "from flows import warm\n"
        "assert 'xml.dom.minidom' not in sys.modules\n"
        "t = warm.warm_imports(('xml.dom.minidom', 'no_such_module_zz', 'json'))\n"
        "t.join(30)\n"
        "assert 'xml.dom.minidom' in sys.modules and not t.is_alive() and t.daemon\n"
        "assert warm.warm_imports(('xml.dom.minidom', 'sys')) is None\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_each_warmed_module_exists_and_follows_a_pipeline_stage() -> None:
    import importlib.util

    from flows.pipeline import STAGES

    assert set(warm.WARM_DURING) <= set(STAGES)
    for modules in warm.WARM_DURING.values():
        for name in modules:
            assert importlib.util.find_spec(name) is not None, name
    assert warm.warm_for_stage("chip") is None  # nothing follows chip in-process

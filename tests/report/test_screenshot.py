"""Open an HTML report in headless Chromium, offline, and keep a screenshot to look at.

The screenshot goes to ``tests/report/screenshots/`` (ignored by git).  Needs the Debian
package ``chromium`` (``apt-get install -y chromium``); skipped without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import example_html

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent / "screenshots"
CASES = ["hard_ocp_dexamethasone_false_positive.yaml", "hard_panhypopituitarism.yaml"]


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="headless check needs /usr/bin/chromium (apt-get install chromium)")
@pytest.mark.parametrize("name", CASES, ids=lambda n: n.removesuffix(".yaml"))
def test_report_renders_in_headless_chromium(tmp_path: Path, name: str) -> None:
    page = tmp_path / name.replace(".yaml", ".html")
    page.write_text(example_html(name), encoding="utf-8")
    SHOTS.mkdir(exist_ok=True)
    shot = SHOTS / name.replace(".yaml", ".png")
    shot.unlink(missing_ok=True)
    profile = tmp_path / "profile"
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={shot}",
        "--window-size=1280,4000", page.as_uri(),
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 20_000
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 4000)
        gray = im.convert("L")
        lo, hi = gray.getextrema()
        assert hi - lo > 100                     # not a blank page
        # the content column is drawn: something other than the page background in the middle
        colors = gray.crop((300, 200, 1000, 3800)).getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 20
    shutil.rmtree(profile, ignore_errors=True)

"""The web page (``faceedit serve``) driven by headless Chromium through selenium.

The test starts the real verb on a free local port (bound to 127.0.0.1) with an empty
model cache. In the *Avatar studio* it draws a seeded avatar, moves Smiling and Eyeglasses
on the shipped AttGAN and checks the result: changed inside the face, nearly unchanged
outside it, and the evaluation judge's reading of each moved attribute gone the way its
slider went; the ground truth and its region gain are shown. The *Photo* tab, without
official weights, shows the download commands; bad and oversized uploads give their
one-line messages, a wrong model keeps the photo, and the self-test model (chosen
explicitly) edits only the face of grace_hopper.jpg. The clips of both video tabs are
edited and the edit named. Screenshots of each state are saved under ``test-artifacts/``.

Chromium comes from the Debian packages ``chromium`` and ``chromium-driver``; the set-up
installs them with apt-get when they are missing and the user is root. Elsewhere the test
is skipped with the reason, except in CI (``CI`` set), where a missing browser fails.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceedit.data.images import read_image

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 90  # seconds: a cold start on a busy 2-core machine
SERVER_TMP: dict[str, Path] = {}  # the server's temporary folder (its TMPDIR)


def _grace() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


def _ensure_chromium() -> None:
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    reason = None
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True, timeout=300,
                           capture_output=True)  # fmt: skip
            subprocess.run(
                ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"],
                env=env, check=True, timeout=600, capture_output=True,
            )  # fmt: skip
        except (subprocess.SubprocessError, OSError) as e:
            reason = f"apt-get could not install chromium ({e})"
    else:
        reason = "chromium is not installed and the user cannot apt-get it (not root)"
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        reason = reason or "chromium or chromedriver still missing after apt-get"
        if os.environ.get("CI"):
            pytest.fail(f"browser test in CI: {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    cache = tmp_path_factory.mktemp("cache")
    env = dict(
        os.environ,
        FACEEDIT_CACHE=str(cache),
        GRADIO_ANALYTICS_ENABLED="False",
        GRADIO_TEMP_DIR=str(cache / "gradio"),
        OMP_NUM_THREADS="1",
        NO_PROXY="127.0.0.1,localhost",
        TMPDIR=str(SERVER_TMP.setdefault("dir", cache / "tmp")),
        # Gradio's own switch for its end-to-end tests: a closed tab is noticed within a
        # second (heartbeats every 0.25 s instead of 15), so the session test is quick
        GRADIO_IS_E2E_TEST="1",
    )
    (cache / "tmp").mkdir()
    log = (cache / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "faceedit", "serve", "--port", str(port), "--max-upload-mb", "2",
         "--steps", "10"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"faceedit serve exited: {(cache / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("faceedit serve did not answer within the time limit")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    # the server removes everything it wrote when it stops
    assert list((cache / "tmp").glob("faceedit-serve-*")) == []


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # no network, no GPU: without these Chromium keeps reaching for Google's services
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1300,1900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, what: str, timeout: float = WAIT, status: str = "#status"):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(condition)
    except TimeoutException:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "web_demo_timeout.png"))
        shown = [e.text for e in driver.find_elements("css selector", status)]
        pytest.fail(f"timed out waiting for {what}; status: {shown!r}")


def _status(driver) -> str:
    return driver.find_element("css selector", "#status").text


def _image(driver, url: str, elem_id: str) -> np.ndarray:
    src = driver.find_element("css selector", f"#{elem_id} img").get_attribute("src")
    if src.startswith("/"):
        src = url + src
    with urllib.request.urlopen(src, timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


def _text(driver, elem_id: str) -> str:
    return driver.find_element("css selector", f"#{elem_id}").text


def _tab(driver, name: str) -> None:
    xpath = f"//button[@role='tab'][normalize-space(.)='{name}']"

    def shown(d):
        return [b for b in d.find_elements("xpath", xpath) if b.is_displayed()]

    _wait(driver, shown, f"the {name} tab")
    shown(driver)[0].click()


def _drag(driver, elem_id: str, offset: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    slider = driver.find_element("css selector", f"#{elem_id} input[type=range]")
    ActionChains(driver).click_and_hold(slider).move_by_offset(offset, 0).release().perform()


def _shot(driver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"web_demo_{name}.png"))


def _readings(driver) -> dict[str, tuple[float, float]]:
    """The judge's table: ``{attribute: (before, after)}``."""
    out = {}
    for row in driver.find_elements("css selector", "#studio-readings tbody tr"):
        cells = [c.text.strip() for c in row.find_elements("css selector", "td")]
        if len(cells) == 3:
            out[cells[0].split(" (")[0]] = (float(cells[1]), float(cells[2]))
    return out


def _upload(driver, elem_id: str, path: Path) -> None:
    driver.find_element("css selector", f"#{elem_id} input[type=file]").send_keys(str(path))


def _clear(driver, elem_id: str) -> None:
    driver.find_element("css selector", f"#{elem_id} button[aria-label='Clear']").click()


def test_avatar_studio(server: str, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    from faceedit.app.studio import FACE_BOX

    driver = browser
    driver.get(server)
    _wait(driver, lambda d: d.find_elements("css selector", "#studio-new"), "the studio")
    studio = "#studio-status"

    # an upload that is not an image: its message, no traceback
    junk = tmp_path / "scribble.png"
    junk.write_bytes(b"this is text, not an image\n" * 10)
    _upload(driver, "studio-upload", junk)
    _wait(driver, lambda d: "not an image" in _text(d, "studio-status"), "the upload error",
          status=studio)  # fmt: skip
    assert "Error: scribble.png" in _text(driver, "studio-status")
    assert "Traceback" not in driver.page_source
    _shot(driver, "studio_upload_error")
    _clear(driver, "studio-upload")

    seed_box = driver.find_element("css selector", "#studio-seed input")
    seed_box.send_keys(Keys.CONTROL, "a")
    seed_box.send_keys("3", Keys.TAB)
    driver.find_element("css selector", "#studio-new").click()
    _wait(driver, lambda d: "avatar 3" in _text(d, "studio-status"), "the new avatar",
          status=studio)  # fmt: skip
    _wait(driver, lambda d: len(_readings(d)) >= 10, "the judge's readings", status=studio)
    before = _readings(driver)
    original = _image(driver, server, "studio-original")

    # each slider goes the way that flips what the judge sees
    want = {a: -1 if before[a][0] > 0.5 else 1 for a in ("Smiling", "Eyeglasses")}
    _drag(driver, "studio-Smiling", 30 * want["Smiling"])
    _wait(driver, lambda d: "Edited: Smiling" in _text(d, "studio-status"), "the first edit",
          status=studio)  # fmt: skip
    _drag(driver, "studio-Eyeglasses", 30 * want["Eyeglasses"])
    _wait(driver, lambda d: "Eyeglasses" in _text(d, "studio-status").partition("Edited:")[2],
          "the second edit", status=studio)  # fmt: skip
    _wait(driver, lambda d: "region gain" in _text(d, "studio-truth-status")
          or "no ground truth" in _text(d, "studio-truth-status"), "the truth's figure",
          status=studio)  # fmt: skip
    _shot(driver, "studio_edit")
    after = _readings(driver)
    edited = _image(driver, server, "studio-result")
    truth = _image(driver, server, "studio-truth")

    assert "region gain" in _text(driver, "studio-truth-status")
    assert truth.shape == original.shape and not np.array_equal(truth, original)
    for a, way in want.items():  # the judge's reading moved the intended way
        assert (after[a][1] - before[a][0]) * way > 0.3, (a, before[a], after[a])
    assert edited.shape == original.shape
    side = original.shape[0]
    x0, y0, x1, y1 = (round(f * side) for f in FACE_BOX)
    inside = np.zeros(original.shape[:2], bool)
    inside[y0:y1, x0:x1] = True
    diff = np.abs(edited.astype(int) - original.astype(int)).max(-1)
    # outside the face only the model's reconstruction error (a few levels), inside the
    # edit itself
    assert diff[~inside].mean() < 10 and (diff[~inside] > 60).mean() < 0.02
    assert diff[inside].mean() > 2 * diff[~inside].mean()

    driver.find_element("css selector", "#studio-reset").click()
    _wait(driver, lambda d: "reset" in _text(d, "studio-status"), "the reset", status=studio)
    assert np.array_equal(_image(driver, server, "studio-result"), original)

    # the video sub-tab: a clip of the same avatar, edited, and the edit named
    if importlib.util.find_spec("av") is not None:
        _tab(driver, "Avatar video")
        driver.find_element("css selector", "#studio-video-run").click()
        _wait(driver, lambda d: "Done" in _text(d, "studio-video-status")
              or "Error" in _text(d, "studio-video-status"), "the edited clip",
              status="#studio-video-status")  # fmt: skip
        done = _text(driver, "studio-video-status")
        assert done.startswith("Done: Smiling +1.0 on avatar 3"), done
        _wait(driver, lambda d: d.find_elements("css selector", "#studio-video-result video"),
              "the clip player")  # fmt: skip
        _shot(driver, "studio_video")


def _face_box() -> tuple[int, int, int, int]:
    from faceedit.faces import align_face

    face = align_face(str(_grace()), size=32)
    x0, y0 = np.floor(face.quad.min(0)).astype(int) - 3
    x1, y1 = np.ceil(face.quad.max(0)).astype(int) + 3
    return max(x0, 0), max(y0, 0), x1, y1


def test_photo_tab(server: str, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    driver = browser
    driver.get(server)
    _tab(driver, "Photo")
    # no official weights in this cache: the commands that fetch them
    _wait(driver, lambda d: "faceedit download lt-ffhq-e4e" in _text(d, "photo-downloads"),
          "the download panel")  # fmt: skip
    panel = _text(driver, "photo-downloads")
    assert "faceedit download attgan-384-hq --from FOLDER" in panel
    _shot(driver, "photo_downloads")

    # an invalid upload, then one over the limit: each its message, no traceback
    junk = tmp_path / "not_a_photo.png"
    junk.write_bytes(b"this is text, not an image\n" * 10)
    _upload(driver, "upload", junk)
    _wait(driver, lambda d: "Error:" in _status(d) and "not an image" in _status(d),
          "the invalid-upload message")  # fmt: skip
    assert "not_a_photo.png" in _status(driver)
    assert "Traceback" not in driver.page_source
    _clear(driver, "upload")
    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff" * (3 * 1024**2))
    _upload(driver, "upload", big)
    _wait(driver, lambda d: "upload limit" in _status(d), "the size-limit message")
    assert "huge.jpg: 3.0 MB is over the 2 MB upload limit" in _status(driver)
    _shot(driver, "photo_upload_errors")
    _clear(driver, "upload")

    # no model chosen: the page says so; the self-test model is an explicit choice
    driver.find_element("css selector", "#sample").click()
    _wait(driver, lambda d: "choose a model first" in _status(d), "the no-model message")
    driver.find_element("css selector", "#selftest input").click()
    _wait(driver, lambda d: "Model ready" in _status(d), "the self-test model")
    driver.find_element("css selector", "#sample").click()
    _wait(driver, lambda d: "face found" in _status(d), "face detection")
    original = read_image(_grace())
    assert np.array_equal(_image(driver, server, "original"), original)
    _drag(driver, "slider-0", 60)
    _wait(driver, lambda d: "Edited" in _status(d), "the edited photo")
    edited = _image(driver, server, "result")
    _shot(driver, "photo_selftest")
    x0, y0, x1, y1 = _face_box()
    outside = np.ones(original.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(edited[outside], original[outside])  # the photo is untouched
    assert np.abs(edited.astype(int) - original.astype(int))[y0:y1, x0:x1].mean() > 3
    assert driver.find_element("css selector", "#download a").get_attribute("href")

    # a wrong model keeps the photo and its session
    driver.find_element("css selector", "#selftest input").click()
    _wait(driver, lambda d: "still editing" in _status(d), "the self-test model let go")
    box = driver.find_element("css selector", "#model textarea, #model input")
    box.click()
    box.send_keys("no-such-model", Keys.ENTER)
    _wait(driver, lambda d: "no-such-model" in _status(d), "the wrong-model message")
    assert "still editing grace_hopper.jpg" in _status(driver), _status(driver)
    assert "/" not in _status(driver).split("no-such-model")[0]  # no server path
    assert np.array_equal(_image(driver, server, "original"), original)
    _shot(driver, "photo_wrong_model")
    _drag(driver, "slider-0", -60)  # the session still edits with the model it had
    _wait(driver, lambda d: "Edited: " in _status(d) and "-" in _status(d), "an edit after it")


def test_photo_video_tab(server: str, browser, tmp_path: Path) -> None:
    pytest.importorskip("av")
    from tests.helpers.tiny_edit import make_video

    clip = tmp_path / "clip.mp4"
    make_video(clip, n_frames=4, size=128, audio=None)
    driver = browser
    driver.get(server)
    _tab(driver, "Photo")
    _wait(driver, lambda d: d.find_elements("css selector", "#selftest input"), "the photo tab")
    driver.find_element("css selector", "#selftest input").click()
    _wait(driver, lambda d: "Model ready" in _status(d), "the self-test model")
    # AttGAN: no inversion per frame, the quickest clip on a busy machine
    driver.find_element("css selector", "#method input[value='attgan']").click()
    _wait(driver, lambda d: "Model ready" in _status(d), "AttGAN")
    _tab(driver, "Video")
    _wait(driver, lambda d: d.find_elements("css selector", "#video-upload input[type=file]"),
          "the video upload field")  # fmt: skip
    _upload(driver, "video-upload", clip)
    status = lambda d: d.find_element("css selector", "#video-status").text  # noqa: E731
    run = driver.find_element("css selector", "#video-run")
    run.click()

    asked = [time.monotonic()]

    def finished(d) -> bool:
        text = status(d)
        if "Done" in text or ("Error" in text and "choose a video" not in text):
            return True
        # the upload was still in flight, or the click came before the tab was ready
        if "choose a video" in text or (not text and time.monotonic() - asked[0] > 15):
            time.sleep(0.5)
            run.click()
            asked[0] = time.monotonic()
        return False

    _wait(driver, finished, "the edited clip", status="#video-status")
    assert "Done" in status(driver) and "4 frames" in status(driver), status(driver)
    assert re.match(r"Done: \w+ \+1\.0 on 4 frames", status(driver)), status(driver)  # named
    _wait(driver, lambda d: d.find_elements("css selector", "#video-result video"),
          "the video player")  # fmt: skip
    _shot(driver, "photo_video")


def test_a_closed_session_leaves_no_files(server: str, browser) -> None:
    """The clips and results of the tabs above were written into per-session folders;
    once the browser leaves the page they are removed."""
    (work,) = SERVER_TMP["dir"].glob("faceedit-serve-*")

    def emptied(_) -> bool:
        return not any(p.is_file() for p in (work / "sessions").rglob("*"))

    assert not emptied(None)  # the open tab's clip is there
    browser.get(server)  # a new page: the last one is closed
    _wait(browser, emptied, "the sessions' files to go", timeout=WAIT)

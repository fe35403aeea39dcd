"""Open a page in headless Chromium (Debian's ``chromium``) and ask the loaded DOM questions.

Chromium runs with ``--remote-debugging-port=0`` on 127.0.0.1 and a throw-away profile; its
DevTools protocol (a websocket, through the ``websockets`` package) navigates to the page, waits
for the load event (every <img> has then loaded or failed) and evaluates one expression in it.
``--dump-dom`` would show the markup but not whether an image decoded; this does.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser")


def chromium_path() -> str | None:
    for name in CANDIDATES:
        if found := shutil.which(name):
            return found
    return None


async def _evaluate(ws_url: str, url: str, expression: str, timeout: float) -> Any:
    import websockets

    async with websockets.connect(ws_url, max_size=2**24) as ws:
        ids = iter(range(1, 1_000_000))

        async def call(method: str, **params: Any) -> dict[str, Any]:
            my_id = next(ids)
            await ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
            while True:
                message = json.loads(await ws.recv())
                if message.get("id") == my_id:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return message.get("result", {})

        await call("Page.enable")
        my_id = next(ids)
        await ws.send(json.dumps({"id": my_id, "method": "Page.navigate", "params": {"url": url}}))
        loaded = navigated = False
        while not (loaded and navigated):
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if message.get("id") == my_id:
                if message.get("result", {}).get("errorText"):
                    raise RuntimeError(f"navigate {url}: {message['result']['errorText']}")
                navigated = True
            elif message.get("method") == "Page.loadEventFired":
                loaded = True
        result = await call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate: {result['exceptionDetails']}")
        return result["result"].get("value")


def evaluate_in_page(url: str, expression: str, timeout: float = 60.0) -> Any:
    """Load ``url`` in a fresh headless Chromium and return the value of ``expression`` there."""
    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError("chromium not on PATH")
    with tempfile.TemporaryDirectory(prefix="paperops-chromium-") as profile:
        cmd = [
            exe,
            "--headless=new",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--disable-background-networking",
            *(["--no-sandbox"] if os.geteuid() == 0 else []),  # Chromium refuses its sandbox as root
            "about:blank",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            active = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not (active.is_file() and len(active.read_text().splitlines()) >= 2):
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
                    raise RuntimeError(f"chromium did not open its DevTools port (rc {proc.poll()}): {err}")
                time.sleep(0.1)
            port = int(active.read_text().splitlines()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
                targets = json.loads(resp.read())
            page = next(t for t in targets if t.get("type") == "page")
            return asyncio.run(_evaluate(page["webSocketDebuggerUrl"], url, expression, timeout))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

#!/usr/bin/env python
"""Nested state: a window manager that reports only what changed, deep-merged on the server.

Each `update_state` call sends a partial document. The server merges it into the
session's state: a dict merges key by key, recursively; anything else (a list, a
string, a number, null) replaces the old value. So changing the theme does not touch
the open windows, and sending a new list of open windows replaces the old list.

Run it against a server (``datacat serve``)::

    python examples/window_tracking_example.py

The server address comes from ``$DATACAT_URL`` (default ``http://127.0.0.1:8080``).
The exit code is 0 when the final state on the server is the expected merge, 1 otherwise.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from datacat_client import DatacatError, Session, create_session

#: A short pause between user actions, so that the records get distinct timestamps.
PAUSE = 0.05

#: What the state must be after every update below has been merged in.
EXPECTED_STATE: dict[str, Any] = {
    "application": {"name": "WindowManager", "version": "1.0.0"},
    "windows": {
        "open": ["editor", "terminal"],
        "active": "editor",
        "geometry": {"editor": {"width": 1280, "height": 800}, "terminal": {"width": 640}},
    },
    "memory": {"footprint_mb": 68.5},
    "settings": {"theme": "light", "autosave": True, "font": {"family": "mono", "size": 14}},
}


def expect(ok: bool, what: str) -> bool:
    """Print one verification and return whether it held."""
    print(f"  [{'ok' if ok else 'FAILED'}] {what}")
    return ok


def open_window(session: Session, name: str, open_now: list[str], memory_mb: float) -> None:
    """Report a newly opened window: only the keys that changed are sent."""
    print(f"opening {name!r}")
    session.update_state(
        {
            "windows": {"open": open_now, "active": name},  # the list replaces the old one
            "memory": {"footprint_mb": memory_mb},
        }
    )
    session.log_event("window_opened", {"window": name})
    session.log_metric("window_count", len(open_now))
    session.log_metric("memory_mb", memory_mb)
    time.sleep(PAUSE)


def main() -> int:
    with create_session(product="WindowManager", version="1.0.0") as session:
        print(f"session: {session.session_id}")
        session.log_event("session_started", {"application": "WindowManager"})

        print("setting the initial state")
        session.update_state(
            {
                "application": {"name": "WindowManager", "version": "1.0.0"},
                "windows": {"open": [], "active": None},
                "memory": {"footprint_mb": 50.2},
                "settings": {"theme": "dark", "autosave": True},
            }
        )

        open_window(session, "editor", ["editor"], 75.3)
        open_window(session, "terminal", ["editor", "terminal"], 92.7)
        open_window(session, "preview", ["editor", "terminal", "preview"], 110.0)

        print("resizing windows (a new nested dict, then a key inside it)")
        session.update_state({"windows": {"geometry": {"editor": {"width": 1024, "height": 800}}}})
        session.update_state(
            {"windows": {"geometry": {"editor": {"width": 1280}, "terminal": {"width": 640}}}}
        )

        print("changing settings (the rest of the state stays as it is)")
        session.update_state({"settings": {"theme": "light", "font": {"family": "mono"}}})
        session.update_state({"settings": {"font": {"size": 14}}})
        session.log_event("settings_changed", {"theme": "light", "font": "mono 14"})
        time.sleep(PAUSE)

        print("switching to 'editor', closing 'preview'")
        session.update_state({"windows": {"active": "editor"}})
        session.log_event("window_activated", {"window": "editor"})
        session.update_state(
            {"windows": {"open": ["editor", "terminal"]}, "memory": {"footprint_mb": 68.5}}
        )
        session.log_event("window_closed", {"window": "preview"})
        session.log_metric("window_count", 2)
        session.log_metric("memory_mb", 68.5)

        details = session.get_details()
        state = details["state"]
        print("state on the server:")
        print(f"  open windows:  {state['windows']['open']}")
        print(f"  active window: {state['windows']['active']}")
        print(f"  geometry:      {state['windows']['geometry']}")
        print(f"  memory:        {state['memory']['footprint_mb']} MB")
        print(f"  settings:      {state['settings']}")
        window_counts = [m["value"] for m in details["metrics"] if m["name"] == "window_count"]
        results = [
            expect(state == EXPECTED_STATE, "the final state is the deep merge of every update"),
            expect(window_counts == [1, 2, 3, 2], "window_count went 1, 2, 3, 2"),
            expect(
                [e["name"] for e in details["events"]].count("window_opened") == 3,
                "three window_opened events",
            ),
        ]

        session.log_event("session_ended")
        session.end()
    return 0 if all(results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DatacatError as exc:
        sys.exit(f"could not reach the DataCat server (is `datacat serve` running?): {exc}")

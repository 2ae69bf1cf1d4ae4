"""Exception capture and thread stacks."""

from __future__ import annotations

import sys
import threading
import traceback

from datacat_client import exception_data, thread_stacks


def _raise_value_error() -> None:
    raise ValueError("bad value 42")


def test_exception_data_from_exc_info_tuple_has_type_message_traceback_and_extra() -> None:
    try:
        _raise_value_error()
    except ValueError:
        info = sys.exc_info()
        data = exception_data(info, {"user": "alice", "attempt": 3})
    assert data["type"] == "ValueError"
    assert data["message"] == "bad value 42"
    assert data["traceback"] == traceback.format_exception(*info)
    assert any("_raise_value_error" in line for line in data["traceback"])
    assert data["traceback"][-1] == "ValueError: bad value 42\n"
    assert data["user"] == "alice"
    assert data["attempt"] == 3


def test_exception_data_defaults_to_the_exception_being_handled() -> None:
    try:
        _raise_value_error()
    except ValueError:
        data = exception_data()
    assert data["type"] == "ValueError"
    assert data["message"] == "bad value 42"


def test_exception_data_accepts_an_exception_instance() -> None:
    try:
        _raise_value_error()
    except ValueError as exc:
        caught = exc
    data = exception_data(caught)
    assert data["type"] == "ValueError"
    assert any("_raise_value_error" in line for line in data["traceback"])


def test_exception_data_without_an_exception_does_not_raise() -> None:
    data = exception_data()
    assert data == {"type": "Unknown", "message": "", "traceback": []}


def test_exception_with_a_broken_str_is_still_captured() -> None:
    class Nasty(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    data = exception_data(Nasty())
    assert data["type"] == "Nasty"
    assert "unprintable" in data["message"]


def test_thread_stacks_list_every_thread_with_its_stack() -> None:
    started, release = threading.Event(), threading.Event()

    def parked_in_a_named_function() -> None:
        started.set()
        release.wait(5)

    thread = threading.Thread(target=parked_in_a_named_function, name="parked", daemon=True)
    thread.start()
    try:
        assert started.wait(2)
        stacks = {s["name"]: s for s in thread_stacks()}
    finally:
        release.set()
        thread.join(2)
    assert threading.main_thread().name in stacks
    parked = stacks["parked"]
    assert parked["daemon"] is True
    assert parked["ident"] == thread.ident
    assert any("parked_in_a_named_function" in line for line in parked["stack"])
    main = stacks[threading.main_thread().name]
    assert any("test_thread_stacks_list_every_thread" in line for line in main["stack"])

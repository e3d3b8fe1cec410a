"""The deployment worker's shared task connection survives a SuperNode closing it on reuse."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from asfed.engine.flower.worker import once_more_if_dropped


def _server(answers: list[bool]) -> tuple[str, threading.Thread]:
    """An HTTP server on 127.0.0.1 that takes one request per connection and, in turn for each
    entry of `answers`, answers 200 (True) or closes the connection without a word (False), as
    uvicorn does when its keep-alive timer fires while the request is on its way."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(10)

    def serve() -> None:
        with srv:
            for answer in answers:
                conn, _ = srv.accept()
                with conn:
                    conn.recv(65536)
                    if answer:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{srv.getsockname()[1]}/", thread


def test_a_read_dropped_as_it_went_out_is_sent_once_more() -> None:
    url, thread = _server([False, True])
    with httpx.Client() as client:
        assert once_more_if_dropped(client.get, url).text == "ok"
    thread.join(5)


def test_a_second_drop_is_the_callers_error() -> None:
    url, thread = _server([False, False])
    with httpx.Client() as client, pytest.raises(httpx.RemoteProtocolError):
        once_more_if_dropped(client.get, url)
    thread.join(5)


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadError])
def test_other_errors_are_not_retried(error) -> None:
    """A refused connection, or a reset while the reply was read (the request may have been
    carried out), is the caller's at once."""
    calls = []

    def fail(request: str) -> None:
        calls.append(request)
        raise error("no")

    with pytest.raises(error):
        once_more_if_dropped(fail, "req")
    assert calls == ["req"]

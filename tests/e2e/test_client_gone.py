"""A client that vanishes after sending its orders: one log line; one that half-closes: answers."""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path

import httpx

from tests.support import Server


def request(body: dict[str, str]) -> bytes:
    """One POST /order as raw HTTP/1.1 bytes."""
    content = json.dumps(body).encode()
    head = f"POST /order HTTP/1.1\r\nHost: x\r\nContent-Length: {len(content)}\r\n\r\n"
    return head.encode() + content


def logs(server: Server, tmp_path: Path) -> str:
    """The server's output and its daily log files."""
    files = [server.log, *sorted((tmp_path / "logs").glob("log_*.log"))]
    return "\n".join(f.read_text(errors="replace") for f in files if f.exists())


def test_pipelined_orders_then_a_reset_log_one_line(
    embedded_server: Server, tmp_path: Path
) -> None:
    orders = [
        {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY", "ORDER_ID": "gone-1"},
        {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "ACC", "POSITION": "BUY", "ORDER_ID": "gone-2"},
    ]
    with socket.create_connection(("127.0.0.1", embedded_server.port)) as sock:
        sock.sendall(b"".join(request(o) for o in orders))
        # Closed with a reset, as a killed client's kernel does: the server reads the
        # requests, then the reset (a plain close would be a half-close, answered).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # The first order commits although nobody reads its answer (the second, queued behind
    # it on a connection now closed, is never started: its client had no answer either).
    deadline = time.monotonic() + 10
    while "order_id=gone-1" not in logs(embedded_server, tmp_path):
        assert time.monotonic() < deadline, logs(embedded_server, tmp_path)
        time.sleep(0.1)  # polling another process's log file
    time.sleep(1)  # anything logged about the lost answer comes right after the commit
    top = httpx.get(f"{embedded_server.url}/health", timeout=10).json()["sequence"]
    ok = httpx.get(f"{embedded_server.url}/orders/gone-1?min_sequence={top}", timeout=10)
    assert ok.status_code == 200, ok.text
    assert httpx.get(f"{embedded_server.url}/orders/gone-2", timeout=10).status_code == 404
    text = logs(embedded_server, tmp_path)
    assert "Traceback" not in text, text
    assert "ERROR" not in text, text
    daily = "".join(f.read_text() for f in (tmp_path / "logs").glob("log_*.log"))
    gone = [line for line in daily.splitlines() if "went away" in line and "POST /order" in line]
    assert len(gone) == 1, daily


def read_to_the_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes."""
    sock.settimeout(30)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_half_closing_client_gets_every_answer(embedded_server: Server) -> None:
    orders = [
        {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY", "ORDER_ID": "half-1"},
        {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "ACC", "POSITION": "BUY", "ORDER_ID": "half-2"},
    ]
    with socket.create_connection(("127.0.0.1", embedded_server.port)) as sock:
        sock.sendall(b"".join(request(o) for o in orders))
        sock.shutdown(socket.SHUT_WR)  # nc -N: "that is all I will send"
        received = read_to_the_end(sock)  # and the server closes once both are answered
    statuses, answers = [], []
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        length = next(int(h.split(":")[1]) for h in lines if h.lower().startswith("content-length"))
        statuses.append(lines[0])
        answers.append(json.loads(rest[:length]))
        received = rest[length:]
    assert statuses == ["HTTP/1.1 200 OK"] * 2, answers
    booked = [a["order_id"] for a in answers if a["RESPONSE"] == "ACCEPTED"]
    assert booked == ["half-1", "half-2"], answers
    for answer in answers:
        url = f"{embedded_server.url}/orders/{answer['order_id']}"
        stored = httpx.get(url, params={"min_sequence": answer["sequence"]}, timeout=10)
        assert stored.status_code == 200, stored.text


def test_a_half_close_inside_a_body_is_a_client_gone(embedded_server: Server) -> None:
    before = httpx.get(f"{embedded_server.url}/health", timeout=10).json()["sequence"]
    cut = request({"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"})[:-3]
    with socket.create_connection(("127.0.0.1", embedded_server.port)) as sock:
        sock.sendall(cut)
        sock.shutdown(socket.SHUT_WR)
        assert read_to_the_end(sock) == b""  # closed at once, not left waiting for the rest
    after = httpx.get(f"{embedded_server.url}/health", timeout=10).json()["sequence"]
    assert after == before  # nothing written

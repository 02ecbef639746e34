"""A client that vanishes after sending its orders: one log line, no traceback."""

from __future__ import annotations

import json
import socket
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


def test_pipelined_orders_then_a_half_close_log_one_line(
    embedded_server: Server, tmp_path: Path
) -> None:
    orders = [
        {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY", "ORDER_ID": "gone-1"},
        {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "ACC", "POSITION": "BUY", "ORDER_ID": "gone-2"},
    ]
    with socket.create_connection(("127.0.0.1", embedded_server.port)) as sock:
        sock.sendall(b"".join(request(o) for o in orders))
        sock.shutdown(socket.SHUT_WR)
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
    text = logs(embedded_server, tmp_path)
    assert "Traceback" not in text, text
    assert "ERROR" not in text, text
    daily = "".join(f.read_text() for f in (tmp_path / "logs").glob("log_*.log"))
    gone = [line for line in daily.splitlines() if "went away" in line and "POST /order" in line]
    assert len(gone) == 1, daily

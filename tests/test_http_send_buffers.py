"""``send_buffers``: a response's pieces sent with scatter-gather writes, resumed after partial sends."""

from __future__ import annotations

import socket
import threading

from exporter.http.connection import IOV_MAX, send_buffers


def received_while_sending(pieces: list[bytes]) -> bytes:
    """What the peer of a socket with a small send buffer reads while ``send_buffers`` sends ``pieces``."""
    sender, receiver = socket.socketpair()
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sender.settimeout(10)  # as the server sets its write timeout: sends are then partial
    received = bytearray()

    def read() -> None:
        while data := receiver.recv(65536):
            received.extend(data)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        send_buffers(sender, pieces)
    finally:
        sender.close()
        reader.join(timeout=10)
        receiver.close()
    return bytes(received)


def test_pieces_arrive_whole_and_in_order_across_partial_sends() -> None:
    pieces = [b"HTTP/1.1 200 OK\r\n\r\n", b"", *(bytes([65 + i % 26]) * (1 + i * 97) for i in range(200))]
    pieces.insert(50, b"L" * (3 * 1024 * 1024))  # far larger than the socket buffer: many partial sends
    assert received_while_sending(pieces) == b"".join(pieces)


def test_more_pieces_than_one_sendmsg_takes() -> None:
    pieces = [f"{i}\n".encode() for i in range(IOV_MAX * 3 + 7)]
    assert received_while_sending(pieces) == b"".join(pieces)


def test_nothing_to_send() -> None:
    assert received_while_sending([b"", b""]) == b""

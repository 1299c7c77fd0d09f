#!/usr/bin/env python3
"""Idle-connection helper of l4.sh's memory workload (issue 7).

  hold.py sink PORT        accept every connection on 127.0.0.1:PORT and
                           hold it, reading and discarding; close on EOF.
                           Runs until killed.
  hold.py hold PORT N [S]  open N TCP connections to 127.0.0.1:PORT, send
                           nothing, print "ready N" once all are connected,
                           then hold them until standard input closes or S
                           seconds (default 120) pass; then close them all.

Only 127.0.0.1, bounded in count and time. Needs 1 fd per connection (the
sink 1 per accepted one): N = 4,000 fits the machine's 20,000 fd limit.
"""

import selectors
import socket
import sys
import time


def sink(port):
    sel = selectors.DefaultSelector()
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", port))
    lst.listen(4096)
    lst.setblocking(False)
    sel.register(lst, selectors.EVENT_READ)
    print("listening", port, flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is lst:
                while True:
                    try:
                        c, _ = lst.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as e:  # EMFILE and the like: back off
                        print("accept:", e, file=sys.stderr, flush=True)
                        time.sleep(0.05)
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ)
            else:
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    s.close()


def hold(port, n, limit):
    deadline = time.monotonic() + limit
    socks = []
    for _ in range(n):
        if time.monotonic() > deadline:
            sys.exit("hold: out of time after %d connections" % len(socks))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        socks.append(s)
    print("ready", len(socks), flush=True)
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if sel.select(timeout=max(0.0, deadline - time.monotonic())):
            if not sys.stdin.buffer.read1(4096):
                break
    for s in socks:
        s.close()


if __name__ == "__main__":
    if sys.argv[1] == "sink":
        sink(int(sys.argv[2]))
    else:
        hold(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 120.0)

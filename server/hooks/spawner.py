"""armhook's spawn helper: starts hook scripts for the Node server and relays their output.

Why it exists: Node's child_process.spawn forks the whole ~100 MB server (page tables copied,
then it waits for exec), which caps a runner at a few hundred spawns a second and stalls the
event loop meanwhile. This small long-lived process uses posix_spawn (vfork-style, constant
cost) instead. Python 3 is on every Azure Linux VM (the Azure Linux agent and cloud-init are
Python); without it armhook falls back to spawning from Node.

It decides nothing: the server builds each script's whole environment, working directory and
stdin, and kills process groups itself (it gets the pid, which is also the group id).

Protocol on stdin/stdout, frames of: type (1 byte) | job (uint32 BE) | length (uint32 BE) | payload.
  server -> helper  'S' spawn: payload = uint32 BE spec length | spec | stdin bytes, where spec is
                    file NUL cwd NUL NAME=value NUL NAME=value ... (UTF-8; the server refuses NULs in them)
                    'K' stop reading the job's output (its script exited; something outside its group holds the pipes)
  helper -> server  'P' started: uint32 pid     'F' failed to start: UTF-8 message
                    'O' stdout bytes            'E' stderr bytes
                    'X' exited: int32 (exit code, or -signal) | uint8 1 when its process group
                        still had members then (0: empty, nothing to signal)
                    'C' both output pipes closed
A job is over for the server when it has seen both 'X' and 'C'.
"""
import errno
import os
import select
import signal
import struct
import sys

HEADER = struct.Struct(">cII")
READ_SIZE = 65536
# Stop reading children's output while this much is waiting to reach the server (backpressure).
OUT_HIGH_WATER = 4 * 1024 * 1024
RESET_SIGNALS = tuple(
    s for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
                signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)
)


class Poller:
    """The part of selectors' interface used here, without its per-call objects: epoll and a dict
    (the helper's own cost per job is what limits spawns per second)."""

    def __init__(self):
        self.epoll = select.epoll()
        self.data = {}

    def register(self, fd, events, data):
        self.epoll.register(fd, events)
        self.data[fd] = data

    def unregister(self, fd):
        self.epoll.unregister(fd)
        del self.data[fd]

    def select(self):
        data = self.data
        return [(fd, data[fd]) for fd, _ in self.epoll.poll() if fd in data]


READ = select.EPOLLIN
WRITE = select.EPOLLOUT


class Helper:
    def __init__(self):
        self.sel = Poller()
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.out_fd = sys.stdout.fileno()
        self.in_fd = sys.stdin.fileno()
        os.set_blocking(self.out_fd, False)
        os.set_blocking(self.in_fd, False)
        self.sel.register(self.in_fd, READ, ("in", None))
        self.writing = False
        self.readers = {}  # fd -> (job, kind) for children's stdout/stderr
        self.paused = False
        self.open_pipes = {}  # job -> number of output pipes still open
        self.stdin_pending = {}  # fd -> (job, memoryview) of stdin still to write

    def send(self, kind, job, payload=b""):
        # Buffered: run() flushes once per round of ready fds, so a short job's frames (started,
        # output, exited, closed) usually reach the server in one write and one wake-up.
        self.outbuf += HEADER.pack(kind, job, len(payload))
        self.outbuf += payload

    def flush(self):
        while self.outbuf:
            try:
                n = os.write(self.out_fd, self.outbuf)
            except BlockingIOError:
                break
            del self.outbuf[:n]
        want = bool(self.outbuf)
        if want != self.writing:
            self.writing = want
            if want:
                self.sel.register(self.out_fd, WRITE, ("out", None))
            else:
                self.sel.unregister(self.out_fd)
        self.backpressure()

    def backpressure(self):
        pause = len(self.outbuf) > OUT_HIGH_WATER
        if pause == self.paused:
            return
        self.paused = pause
        for fd in self.readers:
            if pause:
                self.sel.unregister(fd)
            else:
                self.sel.register(fd, READ, ("child", fd))

    def spawn(self, job, payload):
        (hlen,) = struct.unpack_from(">I", payload, 0)
        stdin_data = memoryview(payload)[4 + hlen:]
        fds = []
        try:
            parts = payload[4:4 + hlen].split(b"\0")
            file, cwd = parts[0], parts[1]
            # bytes throughout: posix_spawn takes them as they are, nothing is decoded.
            env = dict(item.split(b"=", 1) for item in parts[2:])
            in_r, in_w = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            fds = [in_r, in_w, out_r, out_w, err_r, err_w]
            os.chdir(cwd)
            pid = os.posix_spawn(
                file, [file], env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, in_r, 0),
                    (os.POSIX_SPAWN_DUP2, out_w, 1),
                    (os.POSIX_SPAWN_DUP2, err_w, 2),
                ],
                setpgroup=0,
                setsigmask=(),
                setsigdef=RESET_SIGNALS,
            )
        except OSError as e:
            for fd in fds:
                os.close(fd)
            self.send(b"F", job, f"{e.strerror or e} ({errno.errorcode.get(e.errno, e.errno)})".encode())
            return
        except Exception as e:  # a request this helper can't carry out must never take it down
            for fd in fds:
                os.close(fd)
            self.send(b"F", job, f"invalid spawn request: {e}".encode("utf-8", "replace"))
            return
        finally:
            os.chdir("/")
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        self.send(b"P", job, struct.pack(">I", pid))
        self.open_pipes[job] = 2
        for fd, kind in ((out_r, b"O"), (err_r, b"E")):
            os.set_blocking(fd, False)
            self.readers[fd] = (job, kind)
            if not self.paused:
                self.sel.register(fd, READ, ("child", fd))
        pidfd = os.pidfd_open(pid)
        self.sel.register(pidfd, READ, ("exit", (job, pid)))
        if len(stdin_data) == 0:
            os.close(in_w)
        else:
            os.set_blocking(in_w, False)
            self.stdin_pending[in_w] = (job, stdin_data)
            self.sel.register(in_w, WRITE, ("stdin", in_w))

    def write_stdin(self, fd):
        job, data = self.stdin_pending[fd]
        try:
            n = os.write(fd, data)
            data = data[n:]
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the script doesn't read its stdin; that's its business
            data = data[:0]
        if len(data) == 0:
            self.sel.unregister(fd)
            del self.stdin_pending[fd]
            os.close(fd)
        else:
            self.stdin_pending[fd] = (job, data)

    def read_child(self, fd):
        job, kind = self.readers[fd]
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        if data:
            self.send(kind, job, data)
            return
        # While paused (backpressure) no child fd is registered; sending the data above may
        # itself have paused us, so check now.
        if not self.paused:
            self.sel.unregister(fd)
        del self.readers[fd]
        os.close(fd)
        self.open_pipes[job] -= 1
        if self.open_pipes[job] == 0:
            del self.open_pipes[job]
            self.send(b"C", job)

    def reap(self, pidfd, job, pid):
        self.sel.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        # Whether anything is left in the group the script led: when nothing is, the server can
        # skip signalling it (the usual case, and a failed kill costs the server an exception).
        try:
            os.killpg(pid, 0)
            left = 1
        except OSError:
            left = 0
        self.send(b"X", job, struct.pack(">iB", code, left))

    def read_requests(self):
        try:
            data = os.read(self.in_fd, READ_SIZE * 4)
        except BlockingIOError:
            return True
        if not data:
            return False  # the server is gone
        self.inbuf += data
        while len(self.inbuf) >= HEADER.size:
            kind, job, length = HEADER.unpack_from(self.inbuf, 0)
            if len(self.inbuf) < HEADER.size + length:
                break
            payload = bytes(self.inbuf[HEADER.size:HEADER.size + length])
            del self.inbuf[:HEADER.size + length]
            if kind == b"S":
                self.spawn(job, payload)
            elif kind == b"K":
                self.close_job(job)
        return True

    def close_job(self, job):
        """The script is over but something that left its process group (setsid, a daemon) still
        holds its output pipes: take what is there now, then stop waiting for end of file."""
        for fd, (owner, kind) in list(self.readers.items()):
            if owner != job:
                continue
            while True:
                try:
                    data = os.read(fd, READ_SIZE)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                self.send(kind, job, data)
            if not self.paused:
                self.sel.unregister(fd)
            del self.readers[fd]
            os.close(fd)
        if job in self.open_pipes:
            del self.open_pipes[job]
            self.send(b"C", job)

    def run(self):
        while True:
            for fd, (what, arg) in self.sel.select():
                if what == "in":
                    if not self.read_requests():
                        return
                elif what == "out":
                    self.flush()
                elif what == "child":
                    if fd in self.readers:
                        self.read_child(fd)
                elif what == "stdin":
                    self.write_stdin(arg)
                elif what == "exit":
                    self.reap(fd, *arg)
            self.flush()


if __name__ == "__main__":
    # The server decides when we stop (stdin closes, after its drain): a signal to the whole
    # process group (Ctrl-C, timeout(1), kill -- -pgid) must not end the helper under running
    # jobs. Scripts get these signals back at their defaults (setsigdef=RESET_SIGNALS).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    Helper().run()

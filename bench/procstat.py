"""CPU time and memory of processes and threads, read from /proc (Linux)."""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(path: str) -> list[str]:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()


def _stat_cpu(path: str) -> float:
    fields = _stat_fields(path)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK if fields else 0.0  # utime + stime


def reaped_cpu_secs(pid: int) -> float:
    """CPU seconds of the children ``pid`` has waited for (e.g. an ant's finished task shells)."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    return (int(fields[13]) + int(fields[14])) / CLK_TCK if fields else 0.0  # cutime + cstime


def cpu_secs(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    return _stat_cpu(f"/proc/{pid}/stat")


def thread_cpu_secs(tid: int, pid: int | None = None) -> float:
    """User + system CPU seconds of one thread (native id) of ``pid`` (default: this process)."""
    return _stat_cpu(f"/proc/{pid or os.getpid()}/task/{tid}/stat")


def machine_busy_secs() -> float:
    """CPU seconds all cores spent not idle (nor waiting on I/O) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / CLK_TCK


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmHWM") / 1024


def reset_peak(pid: int) -> None:
    """Start a new peak-RSS window (writing 5 to clear_refs resets VmHWM to the current RSS)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (e.g. a prefork pool's workers)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            out.append(int(entry))
    return out


def listening_on(port: int, command: str) -> int | None:
    """The process named ``command`` whose command line names ``port`` (the server of a URL)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                # split on blanks too: redis-server rewrites its title into one argument
                argv = f.read().decode(errors="replace").replace("\0", " ").split()
        except OSError:
            continue
        if (
            argv
            and os.path.basename(argv[0]) == command
            and any(a == str(port) or a.endswith(f":{port}") for a in argv)
        ):
            return int(entry)
    return None


def tree_cpu_secs(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children (their own, not what they spawned)."""
    return cpu_secs(pid) + sum(cpu_secs(c) for c in children(pid))

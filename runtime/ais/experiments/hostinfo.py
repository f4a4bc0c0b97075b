"""Host description for the experiments' tables."""


def cpu_name():
    """The `model name` line of /proc/cpuinfo, or "unknown"."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"

"""Shared helpers of the Python AIS tests: one line per case, a failure count."""

failures = 0


def report(ok, name, detail="", width=52):
    global failures
    print(f"{'PASS' if ok else 'FAIL'} {name:{width}s} {detail}")
    if not ok:
        failures += 1


def expect_error(name, fn, exc, needle):
    """fn() must raise exc with needle in its message."""
    try:
        fn()
    except exc as e:
        report(needle in str(e), name, f"{type(e).__name__}: {e}")
        return
    report(False, name, "no exception")


def finish():
    """Prints the summary; returns the exit status (failures, capped at 100)."""
    print("all passed" if failures == 0 else f"{failures} failed")
    return min(failures, 100)

"""One launch call for every front end: `launch.launch.run(request, stdio) -> int`.

A request says what was asked (typed, as given on a command line: names not yet
resolved) and who asked (its environment, working directory and uid, never read from
this process); stdio is the caller's three fds. From here down nothing reads sys.argv,
os.environ or the process's cwd, nothing exits, and nothing keeps state between two
calls, so `runas-podman`, `runas`, the root broker and the launch server share it, and
two launches may run in one event loop.

May import: manage, broker, run, bus, host, core (never cli or install).
"""

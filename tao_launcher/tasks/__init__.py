"""One package per task, each on the shared core (``tao_launcher.core``).

A task package has ``spec.py`` (schemas per subtask; imports no torch, the launcher reads
it) and ``subtasks.py`` (one function per subtask, run by the entrypoint).
"""

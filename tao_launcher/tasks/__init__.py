"""One package per task, each on the shared core (``tao_launcher.core``) and, for the NLP tasks,
the NLP layer (``tao_launcher.nlp``); ``tao_launcher/registry.py`` lists them.

A task package has ``spec.py`` (schemas per subtask; imports no torch, the launcher reads
it), ``data.py``, ``model.py`` and ``subtasks.py`` (one typed function per subtask, run by the
entrypoint). docs/adding_a_task.md is the contract.
"""

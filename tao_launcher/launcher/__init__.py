"""Host side of tao: the CLI, the mounts file, the images, the runners and their jobs.

Nothing in this package imports torch: ``tao --help`` must stay fast, and the host may
have no training dependencies at all when subtasks run in containers.
"""

"""Run the entrypoint with the example task registered, as a contributor's new row in registry.TASKS would be:
``python tests/example_task/run_entrypoint.py sentence_pair train -r DIR ...`` (the key from TAO_KEY)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the example_task package

from tao_launcher import registry  # noqa: E402
from tao_launcher.entrypoint import main  # noqa: E402

SUBTASKS = tuple(s for s in registry.SUBTASKS if s != "dataset_convert")  # its data needs no conversion
registry.TASKS["sentence_pair"] = registry.task("sentence_pair", "sentence-pair classification (an example)",
                                                package="example_task.sentence_pair", subtasks=SUBTASKS)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

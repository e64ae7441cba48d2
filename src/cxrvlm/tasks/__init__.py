"""The tasks: each module defines one task once (prompts, answer format and parser, metric, how it reads an
image) and registers its `Task`. Importing this package registers them all."""
# The import order is the registry's order, which is the order a reading lists its fields (import sorters keep it).
# isort: off
from cxrvlm.tasks import classify, report, detect, segment, vqa  # noqa: F401 - the tasks inference reads
from cxrvlm.tasks import ground, findings_then_report, labels  # noqa: F401 - tasks trained and evaluated only
# isort: on
from cxrvlm.tasks.base import (ReadContext, ReadOptions, Task, get_task, list_tasks, mask_task, readable_tasks,
                               reading_fields, register, screening_task)

__all__ = ["ReadContext", "ReadOptions", "Task", "get_task", "list_tasks", "mask_task", "readable_tasks",
           "reading_fields", "register", "screening_task"]

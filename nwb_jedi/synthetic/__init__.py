"""Synthetic ground truth: cognitive tasks, teacher RNNs trained on them, and spiking datasets.

>>> from nwb_jedi.synthetic import make_dataset
>>> ds = make_dataset(tasks=("sine", "memorypro"), n_units=200)  # doctest: +SKIP

Pure numpy/torch; no NWB. See `dataset` for the design (one multitask teacher per task set).
"""

from nwb_jedi.synthetic.cache import default_cache_dir, teacher_cache_dir
from nwb_jedi.synthetic.dataset import make_dataset
from nwb_jedi.synthetic.tasks import (
    TASKS,
    DecisionTask,
    MemoryProTask,
    MultiTask,
    SineTask,
    Task,
    TaskTrial,
    get_task,
)
from nwb_jedi.synthetic.teacher import (
    TEACHER_VERSION,
    TeacherRNN,
    get_teacher,
    teacher_step,
    train_teacher,
    training_count,
)

__all__ = [
    "TASKS", "TEACHER_VERSION", "DecisionTask", "MemoryProTask", "MultiTask", "SineTask", "Task",
    "TaskTrial", "TeacherRNN", "default_cache_dir", "get_task", "get_teacher", "make_dataset",
    "teacher_cache_dir", "teacher_step", "train_teacher", "training_count",
]

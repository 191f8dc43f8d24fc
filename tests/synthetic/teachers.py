"""Settings of the small teacher shared by the synthetic tests (`conftest.small_teacher`)."""

#: A tiny multitask teacher: good enough to have task-dependent dynamics, fast to train.
SMALL = {"n_units": 40, "max_iters": 60}
TASKS3 = ("sine", "memorypro", "dm")

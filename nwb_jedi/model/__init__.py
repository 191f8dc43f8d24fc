"""The JEDI estimator and its torch building blocks (no NWB here)."""

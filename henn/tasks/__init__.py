"""The 2017 tutorial's two tasks, as configurations of :func:`henn.training.fit.fit`.

Each module holds a task's data, model builder and tuned hyper-parameters; training
runs through the one trainer, like any user's model.
"""

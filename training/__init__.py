"""Training of the embedded toy model (not part of the installed package; run from the repository root).

``config`` holds the options, ``train`` the command line (``python -m training.train``), ``trainer`` the
phases and their losses, ``consistency`` the modality-consistency term, ``parallel`` data-parallel
training over the GPUs of one host. ``recipe.md`` is the chain of runs behind the committed weights and
``training.json`` their logs.
"""

"""``python -m training.cli``: the ``nhmm`` command."""

from training.cli import main

main()

"""``python -m swinfuse_auto COMMAND ...`` (and ``torchrun ... -m swinfuse_auto train_fold ...``)."""

from swinfuse_auto.cli.main import main

raise SystemExit(main())

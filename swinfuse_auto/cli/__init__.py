"""The user's commands. Each module has ``add_arguments(parser)``, ``run(args)`` and ``main(argv)``;
``run`` only translates flags into a call of :mod:`swinfuse_auto.api`."""

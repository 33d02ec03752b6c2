"""Built-in experiment planners. Importing this package registers them in
:data:`swinfuse_auto.registry.PLANNERS`; third-party planners register through the entry-point
group ``swinfuse_auto.planners`` instead of being added here."""

from planners import default, variants  # noqa: F401  (imported for registration)

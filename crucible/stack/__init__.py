"""Running the whole stack on one machine: ``crucible dev``."""

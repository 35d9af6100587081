"""``python -m lightning_energy`` is the ``lightning-energy`` command."""

from lightning_energy.cli import main

if __name__ == "__main__":
    main()

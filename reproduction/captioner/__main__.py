"""``python -m reproduction.captioner``: train the testbed captioner (see :mod:`reproduction.captioner.train`)."""

from reproduction.captioner.train import main

if __name__ == "__main__":
    main()

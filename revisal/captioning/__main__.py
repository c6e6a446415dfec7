"""``python -m revisal.captioning``: train the testbed captioner (see :mod:`revisal.captioning.train`)."""

from .train import main

if __name__ == "__main__":
    main()

"""``python -m baseplate.server CONFIG``: the same as ``baseplate-serve CONFIG``."""

from baseplate.server import load_app_and_run_server

if __name__ == "__main__":
    load_app_and_run_server()

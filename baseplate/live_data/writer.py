"""Write a file's contents to an existing node in ZooKeeper.

Run as ``python -m baseplate.live_data.writer CONFIG INPUT NODE``. CONFIG's ``[live-data]``
section holds the ZooKeeper connection keys, as for the watcher. The tool prints a unified
diff of the node's current data against the file, then writes the file with a
compare-and-set on the node version, so a concurrent change is never overwritten silently.
The node must already exist (created with the appropriate ACLs); a missing node is an error.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, TextIO

from baseplate.live_data._tool import (
    DEFAULT_CONNECT_TIMEOUT,
    LiveDataToolError,
    configure_logging,
    connect,
    read_live_data_config,
)

if TYPE_CHECKING:
    from kazoo.client import KazooClient


class WriterError(LiveDataToolError):
    """The data could not be written to ZooKeeper."""


class NodeDoesNotExistError(WriterError):
    """The target node does not exist."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"ZooKeeper node {path!r} does not exist; "
            "create it with the appropriate ACLs before writing to it"
        )
        self.path = path


class NodeAccessDeniedError(WriterError):
    """ZooKeeper refused access to the node with the configured credentials."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"ZooKeeper refused access to node {path!r}; check zookeeper.credentials"
        )
        self.path = path


class UnexpectedChangeError(WriterError):
    """The node changed between reading it and writing to it."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"ZooKeeper node {path!r} changed while this write was being prepared; "
            "nothing was written, run the writer again to see the new diff"
        )
        self.path = path


def write_file_to_zookeeper(
    zookeeper: KazooClient,
    source_file: IO[bytes],
    dest_path: str,
    output: TextIO | None = None,
) -> bool:
    """Write the contents of ``source_file`` to the ZooKeeper node ``dest_path``.

    Prints progress and a unified diff of the old and new data to ``output`` (standard
    output by default). The write only succeeds if the node still has the version that was
    read, so a concurrent writer's change is never lost.

    :returns: Whether the node was changed (``False`` when the data was already the same).
    :raises NodeDoesNotExistError: The node does not exist.
    :raises UnexpectedChangeError: The node changed between the read and the write.
    """
    from kazoo.exceptions import BadVersionError, NoAuthError, NoNodeError

    out = output if output is not None else sys.stdout
    source_name = getattr(source_file, "name", "input")
    print(f"Writing {source_name} to ZooKeeper {dest_path}...", file=out)

    try:
        current_data, stat = zookeeper.get(dest_path)
    except NoNodeError:
        raise NodeDoesNotExistError(dest_path)
    except NoAuthError:
        raise NodeAccessDeniedError(dest_path)
    current_data = current_data or b""

    new_data = source_file.read()

    if current_data == new_data:
        print("No changes detected. Not writing.", file=out)
        return False

    try:
        current_text = current_data.decode("utf-8")
        new_text = new_data.decode("utf-8")
    except UnicodeDecodeError:
        print("Data is not UTF-8 text; not showing a diff.", file=out)
    else:
        diff = difflib.unified_diff(
            current_text.splitlines(),
            new_text.splitlines(),
            fromfile=f"{dest_path} (ZooKeeper, version {stat.version})",
            tofile=str(source_name),
            lineterm="",
        )
        for line in diff:
            print(line, file=out)

    try:
        zookeeper.set(dest_path, new_data, version=stat.version)
    except BadVersionError:
        raise UnexpectedChangeError(dest_path)
    except NoNodeError:
        raise NodeDoesNotExistError(dest_path)
    except NoAuthError:
        raise NodeAccessDeniedError(dest_path)

    print("Wrote data to Zookeeper.", file=out)  # spelled as the 0.28 tool printed it
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the writer tool; returns the process exit status."""
    arg_parser = argparse.ArgumentParser(description=sys.modules[__name__].__doc__)
    arg_parser.add_argument("--debug", action="store_true", help="enable debug logging")
    arg_parser.add_argument(
        "--connect-timeout",
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT,
        help="seconds to wait for ZooKeeper (default: %(default)s)",
    )
    arg_parser.add_argument(
        "config_file", type=argparse.FileType("r"), help="path to a configuration file"
    )
    arg_parser.add_argument("source", type=argparse.FileType("rb"), help="file to upload")
    arg_parser.add_argument("dest", help="path of the node in ZooKeeper")
    args = arg_parser.parse_args(argv)
    configure_logging(args.debug)

    from baseplate.config import ConfigurationError

    try:
        with args.config_file:
            raw_config = read_live_data_config(args.config_file)
        zookeeper = connect(raw_config, read_only=False, connect_timeout=args.connect_timeout)
    except (LiveDataToolError, ConfigurationError) as exc:
        print(f"live data writer: {exc}", file=sys.stderr)
        return 1

    try:
        with args.source:
            write_file_to_zookeeper(zookeeper, args.source, args.dest)
    except WriterError as exc:
        print(f"live data writer: {exc}", file=sys.stderr)
        return 1
    finally:
        zookeeper.stop()
        zookeeper.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

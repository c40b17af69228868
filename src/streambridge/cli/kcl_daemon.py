"""``streambridge kcl-daemon``: the KCL MultiLangDaemon's properties and command line, made.

Nobody should write a Java class path or a properties file by hand. This command takes the
child's own options (those of ``streambridge kcl``, after ``--``: checked as that command
checks them), writes a properties file whose ``executableName`` runs exactly that child with
this interpreter, and prints — or runs, with ``--run`` — the daemon's command line with
amazon-kclpy's jars (the ``kcl`` extra) on its class path. Secrets stay out of both: the
child reads the PostHog key from ``POSTHOG_API_KEY`` (which it inherits from the daemon) or a
key file, never from its command line.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from streambridge._files import write_all
from streambridge.cli._common import EXIT_OK, UsageError
from streambridge.cli.importing import importer_settings
from streambridge.cli.kcl import add_parser as add_kcl_parser

__all__ = ["MAIN_CLASS", "add_parser", "daemon_command", "jars_directory", "properties_text"]

#: The MultiLangDaemon's entry point.
MAIN_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"


def add_parser(commands: Any) -> None:
    """Add the ``kcl-daemon`` command to ``commands`` (argparse sub-parsers)."""
    daemon = commands.add_parser(
        "kcl-daemon",
        help="write the KCL MultiLangDaemon's properties and print (or run) its command line",
        description="Write a properties file for the KCL's MultiLangDaemon whose child is "
        "`streambridge kcl` with the options given after --, and print the daemon's command "
        "line (java, amazon-kclpy's jars on the class path), or run it with --run.",
    )
    daemon.add_argument(
        "--application-name",
        required=True,
        help="the KCL application: the name of its lease table (one per consumer of a stream)",
    )
    daemon.add_argument(
        "--properties", type=Path, required=True, help="the properties file to write"
    )
    daemon.add_argument(
        "--region", help="the stream's region (default: the AWS environment's, AWS_REGION)"
    )
    daemon.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another daemon property (failoverTimeMillis=10000, retrievalMode=FANOUT, "
        "metricsLevel=NONE, kinesisEndpoint=…); may be repeated",
    )
    daemon.add_argument("--java", help="the java command (default: $JAVA_HOME/bin/java, or java)")
    daemon.add_argument(
        "--run",
        dest="start",
        action="store_true",
        help="run the daemon instead of printing its command",
    )
    daemon.add_argument(
        "child", nargs=argparse.REMAINDER, help="-- then the options of `streambridge kcl`"
    )
    daemon.set_defaults(run=_kcl_daemon)


def jars_directory() -> Path:
    """amazon-kclpy's jars (the ``kcl`` extra downloads them at install time).

    Raises:
        UsageError: amazon-kclpy is not installed, or its install holds no jar.
    """
    try:
        import amazon_kclpy  # noqa: PLC0415 - the kcl extra
    except ImportError:
        raise UsageError(
            "the daemon's jars come with amazon-kclpy: pip install 'streambridge[kcl]'"
        ) from None
    jars = Path(amazon_kclpy.__file__).resolve().parent / "jars"
    if not any(jars.glob("amazon-kinesis-client-multilang-*.jar")):
        raise UsageError(
            f"amazon-kclpy is installed without the KCL's jars ({jars}): reinstall it where "
            f"Maven Central can be reached (pip install --force-reinstall 'streambridge[kcl]')"
        )
    return jars


def properties_text(
    child: list[str], application: str, stream: str, region: str | None, extra: dict[str, str]
) -> str:
    """The properties file: the child with this interpreter, the stream, the application.

    Raises:
        UsageError: An argument of the child holds a space (the daemon splits
            ``executableName`` on spaces, with no quoting).
    """
    command = [sys.executable, "-m", "streambridge", "kcl", *child]
    spaced = [arg for arg in command if not arg or any(c.isspace() for c in arg)]
    if spaced:
        raise UsageError(
            f"the daemon splits executableName on spaces and knows no quoting: {spaced[0]!r} "
            f"cannot be passed (move it to a file, e.g. --config, or a path without spaces)"
        )
    properties = {
        "executableName": " ".join(command),
        "applicationName": application,
        "streamName": stream,
        "AwsCredentialsProvider": "DefaultCredentialsProvider",
        "initialPositionInStream": "TRIM_HORIZON",
        # the KCL's own default is enhanced fan-out (SubscribeToShard: another IAM grant, and
        # billed by the hour per shard); iam.kcl_policy's default is polling too
        "retrievalMode": "POLLING",
        "processingLanguage": f"python/{sys.version_info[0]}.{sys.version_info[1]}",
    }
    if region:
        properties["regionName"] = region
    properties.update(extra)
    lines = ["# Written by `streambridge kcl-daemon`: the KCL MultiLangDaemon's settings."]
    lines += [f"{key} = {value}" for key, value in properties.items()]
    return "\n".join(lines) + "\n"


def daemon_command(java: str, jars: Path, properties: Path) -> list[str]:
    """The daemon's command line: ``java -cp '<jars>/*' MultiLangDaemon --properties-file …``."""
    return [java, "-cp", f"{jars}{os.sep}*", MAIN_CLASS, "--properties-file", str(properties)]


def _kcl_daemon(args: argparse.Namespace) -> int:
    child = args.child[1:] if args.child[:1] == ["--"] else list(args.child)
    if not child:
        raise UsageError("give the child's options after --: -- --stream NAME --event-key KEY")
    parser = argparse.ArgumentParser(prog="streambridge")
    add_kcl_parser(parser.add_subparsers())  # the child's own parser checks its options
    try:
        parsed = parser.parse_args(["kcl", *child])
    except SystemExit:
        raise UsageError("the options after -- are not those of `streambridge kcl`") from None
    extra: dict[str, str] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
        extra[key.strip()] = value.strip()
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:  # the daemon's clients find none without it, and it dies with a stack trace
        raise UsageError("no AWS region: pass --region or set AWS_REGION")
    if getattr(parsed, "posthog_key", None):
        raise UsageError(
            "--posthog-key would be written into executableName, which every user reads (ps, "
            "the properties file): give the child POSTHOG_API_KEY or --posthog-key-file"
        )
    stream = importer_settings(parsed).stream_name  # --stream, or --config's kinesisStreamName
    text = properties_text(child, args.application_name, stream, region, extra)
    jars = jars_directory()
    home = os.environ.get("JAVA_HOME")
    java = args.java or (str(Path(home) / "bin" / "java") if home else shutil.which("java"))
    if not java:
        raise UsageError("no java: install Java 17+, or pass --java PATH")
    fd = os.open(args.properties, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, text.encode())
    finally:
        os.close(fd)
    command = daemon_command(java, jars, args.properties.resolve())
    if args.start:  # this process becomes the daemon: signals reach it, its exit is ours
        os.execvp(command[0], command)  # noqa: S606 - the daemon, as it would be printed
    print(shlex.join(command))
    return EXIT_OK

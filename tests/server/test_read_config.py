"""Reading the INI file, in this process: sections, defaults, raw values, factories."""

from __future__ import annotations

import io
import json

import pytest

from baseplate.config import ConfigurationError
from baseplate.server import ConfigFileError, _load_factory, make_app, read_config

INI = """\
[DEFAULT]
region = eu

[app:main]
factory = tests.server.serve_apps:config_echo_app
url = http://%(region)s.example

[server:main]
factory = baseplate.server.wsgi

[tshell]
setup = my_service:tshell_setup

[loggers]
keys = root
"""


def test_sections_with_defaults_and_raw_values():
    config = read_config(io.StringIO(INI), "main", "main")

    assert config.app == {
        "region": "eu",
        "factory": "tests.server.serve_apps:config_echo_app",
        "url": "http://%(region)s.example",
    }
    assert config.server == {"region": "eu", "factory": "baseplate.server.wsgi"}
    assert config.tshell == {"region": "eu", "setup": "my_service:tshell_setup"}
    assert config.has_logging_options is True


def test_reading_from_a_path(tmp_path):
    path = tmp_path / "app.ini"
    path.write_text(INI)

    config = read_config(str(path), None, "main")

    assert config.filename == str(path)
    assert config.server is None
    assert config.app["url"] == "http://%(region)s.example"


def test_missing_app_section_names_it():
    with pytest.raises(ConfigFileError, match=r"no \[app:other\] section"):
        read_config(io.StringIO(INI), None, "other")


def test_app_factory_gets_the_whole_section():
    config = read_config(io.StringIO(INI), None, "main")

    app = make_app(config.app)

    body = b"".join(app({}, lambda status, headers: None))
    assert json.loads(body) == {
        "region": "eu",
        "factory": "tests.server.serve_apps:config_echo_app",
        "url": "http://%(region)s.example",
    }


def test_load_factory_forms():
    assert _load_factory("json:dumps") is __import__("json").dumps
    assert _load_factory("json.dumps") is __import__("json").dumps
    assert _load_factory("json", default_name="loads") is __import__("json").loads
    assert _load_factory("os.path:join") is __import__("os").path.join


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_here:x", "no module named 'no_such_module_here'"),
        ("json:no_such_name", "has no 'no_such_name'"),
        (":x", "not a 'module.path:name' reference"),
        ("json:", "not a 'module.path:name' reference"),
        ("nodots", "not a 'module.path:name' reference"),
    ],
)
def test_load_factory_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        _load_factory(spec)


def test_make_app_without_factory():
    with pytest.raises(ConfigurationError, match="factory: required option is missing"):
        make_app({"foo": "1"})


@pytest.mark.parametrize(
    "raw",
    [
        "37%",
        "37.5%%",
        "%(region)s at 10%",
        "100%% of %(region)s%",
        "% leading",
        "%(nope)s",
        "%(oops",
    ],
)
def test_values_are_read_as_written(raw):
    text = f"[DEFAULT]\nregion = eu\n\n[app:main]\nrate = {raw}\n"

    config = read_config(io.StringIO(text), None, "main")

    assert config.app["rate"] == raw

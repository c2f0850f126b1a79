"""Environment variables: token, gateway address, secret, host id."""

import pytest

from mpreg.settings import ConfigError, Settings, gateway_url, host_id, read_token


def test_token_precedence(tmp_path):
    f = tmp_path / "token"
    f.write_text("  from-file\n")
    env = {"MPREG_HTTP_TOKEN_FILE": str(f)}
    assert read_token(None, env) == "from-file"
    assert read_token(None, {**env, "MPREG_HTTP_TOKEN": "from-env"}) == "from-env"
    assert read_token("arg", {**env, "MPREG_HTTP_TOKEN": "from-env"}) == "arg"
    assert read_token(None, {}) is None
    with pytest.raises(ConfigError, match="MPREG_HTTP_TOKEN_FILE"):
        read_token(None, {"MPREG_HTTP_TOKEN_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    "given, url",
    [
        ("ws://127.0.0.1:7780", "ws://127.0.0.1:7780/"),
        ("ws://127.0.0.1:7780/", "ws://127.0.0.1:7780/"),
        ("127.0.0.1:7780", "ws://127.0.0.1:7780/"),
        ("http://h:1", "ws://h:1/"),
        ("https://h:1/x", "wss://h:1/x"),
    ],
)
def test_gateway_url(given, url):
    assert gateway_url(given) == url


def test_gateway_url_rejects_other_schemes():
    with pytest.raises(ConfigError):
        gateway_url("ftp://h:1")


def test_settings_defaults_and_env(tmp_path):
    s = Settings.from_env({})
    assert (s.cluster, s.beacon_port, s.interfaces, s.mdns, s.secret, s.wait_ms) == (
        "default", 7701, [], True, None, 1500)
    f = tmp_path / "s"
    f.write_bytes(b"secret \n")
    s = Settings.from_env({"MPREG_CLUSTER": "lab", "MPREG_BEACON_PORT": "9999",
                           "MPREG_INTERFACES": "lo, eth0,", "MPREG_MDNS": "off",
                           "MPREG_SECRET_FILE": str(f), "MPREG_HOST": "box"})
    assert (s.cluster, s.beacon_port, s.interfaces, s.mdns, s.secret, s.host) == (
        "lab", 9999, ["lo", "eth0"], False, b"secret", "box")
    with pytest.raises(ConfigError, match="MPREG_MDNS"):
        Settings.from_env({"MPREG_MDNS": "maybe"})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        Settings.from_env({"MPREG_SECRET_FILE": str(empty)})


def test_host_id_like_rust():
    assert host_id("given") == "given"
    h = host_id(None)
    assert h and h == host_id("")

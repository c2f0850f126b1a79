"""mDNS browsing through a fake ``zeroconf`` module: nothing is sent. Real tests never
browse mDNS (``MPREG_MDNS=0``); this checks the gate and the TXT handling."""

import sys
import types

import pytest

from mpreg import datagram, discovery
from mpreg.errors import NoGateway


def fake_zeroconf(records):
    """A stand-in for the zeroconf package answering with ``records``
    (name -> (properties, [IPv4 addresses]))."""
    mod = types.ModuleType("zeroconf")
    made = []

    class IPVersion:
        V4Only = "v4"

    class InterfaceChoice:
        All = "all"

    class Info:
        def __init__(self, props, addrs):
            self.properties = props
            self._addrs = addrs

        def parsed_addresses(self, version):
            assert version == IPVersion.V4Only
            return self._addrs

    class Zeroconf:
        def __init__(self, interfaces):
            self.interfaces = interfaces
            self.closed = False
            made.append(self)

        def get_service_info(self, type_, name, timeout):
            props, addrs = records[name]
            return Info(props, addrs)

        def close(self):
            self.closed = True

    class ServiceBrowser:
        def __init__(self, zc, type_, listener):
            assert type_ == "_mpreg._tcp.local."
            for name in records:
                listener.add_service(zc, type_, name)

        def cancel(self):
            pass

    mod.IPVersion, mod.InterfaceChoice, mod.Zeroconf, mod.ServiceBrowser = (
        IPVersion, InterfaceChoice, Zeroconf, ServiceBrowser)
    mod.made = made
    return mod


ENV = {"MPREG_INTERFACES": "lo", "MPREG_BEACON": "0", "MPREG_CLUSTER": "lab",
       "MPREG_DISCOVERY_WAIT_MS": "300"}


def test_txt_http_of_our_cluster_is_used(monkeypatch):
    tag = datagram.cluster_tag("lab").hex()
    fake = fake_zeroconf({
        "other._mpreg._tcp.local.": ({b"cluster": b"0000000000000000", b"http": b"1"}, ["127.0.0.2"]),
        "nohttp._mpreg._tcp.local.": ({b"cluster": tag.encode()}, ["127.0.0.3"]),
        "n1._mpreg._tcp.local.": ({b"cluster": tag.encode(), b"http": b"7780"}, ["127.0.0.4"]),
    })
    monkeypatch.setitem(sys.modules, "zeroconf", fake)
    assert discovery.find_gateway(None, ENV) == "ws://127.0.0.4:7780/"
    (zc,) = fake.made
    assert zc.interfaces == ["127.0.0.1"] and zc.closed  # only the chosen interfaces


def test_mdns_off_never_touches_zeroconf(monkeypatch):
    fake = fake_zeroconf({})
    monkeypatch.setitem(sys.modules, "zeroconf", fake)
    with pytest.raises(NoGateway, match="mDNS off"):
        discovery.find_gateway(None, {**ENV, "MPREG_MDNS": "0"})
    with pytest.raises(NoGateway, match="mDNS off"):
        discovery.find_gateway(None, {**ENV, "MPREG_MDNS": "false"})
    assert fake.made == []


def test_without_zeroconf_it_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "zeroconf", None)  # import fails
    with pytest.raises(NoGateway, match="zeroconf. package is not installed"):
        discovery.find_gateway(None, ENV)


def test_nothing_found_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "zeroconf", fake_zeroconf({}))
    with pytest.raises(NoGateway, match="no `_mpreg._tcp.local.` service with `http=`"):
        discovery.find_gateway(None, ENV)

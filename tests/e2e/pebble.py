"""A real ACME server for the HTTPS tests: Debian's `pebble`, with `pebble-challtestsrv` as its DNS.

Pebble validates HTTP-01 challenges for real: it resolves each name through challtestsrv (every name answers
the address set with `point_all_at`, or one set per name with `point`) and fetches
http://NAME/.well-known/acme-challenge/TOKEN on port 80 of that address. Nothing here marks a challenge
valid by itself (PEBBLE_VA_ALWAYS_VALID is never set). Its ACME API is HTTPS with a certificate from a
small CA made here (`api_ca`, given to the hosts with --ca-cert); the root it issues from is new at every
start (`root_pem`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from tests import certs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_api_ca(directory: Path, addresses: list[str]) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for Pebble's API: (ca.pem, cert.pem, key.pem)."""
    ca = certs.make_ca("provisioner e2e pebble API CA")
    cert, key = certs.make(["localhost"], ips=addresses, ca=ca, days=30)
    paths = directory / "api-ca.pem", directory / "api-cert.pem", directory / "api-key.pem"
    for path, text in zip(paths, (ca.pem, cert, key), strict=True):
        path.write_text(text)
    return paths


class Pebble:
    """pebble + pebble-challtestsrv on this machine, the ACME API on `address` (the sandboxes' gateway)."""

    def __init__(self, directory: Path, address: str) -> None:
        self.dir = directory
        self.address = address
        self.acme_port = free_port()
        self.mgmt_port = free_port()
        self.dns_port = free_port()
        self.dns_mgmt_port = free_port()
        self.api_ca, self.cert, self.key = make_api_ca(directory, [address, "127.0.0.1"])
        self.procs: list[subprocess.Popen[bytes]] = []

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("pebble") and shutil.which("pebble-challtestsrv"))

    @property
    def directory_url(self) -> str:
        return f"https://{self.address}:{self.acme_port}/dir"

    def start(self) -> Pebble:
        config = {
            "pebble": {
                "listenAddress": f"{self.address}:{self.acme_port}",
                "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
                "certificate": str(self.cert),
                "privateKey": str(self.key),
                "httpPort": 80,
                "tlsPort": 443,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        (self.dir / "pebble.json").write_text(json.dumps(config))
        dns = ["pebble-challtestsrv", "-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", ""]
        # Nothing answers at 127.0.0.9 until a test says where names go (point_all_at, point).
        dns += ["-defaultIPv4", "127.0.0.9", "-dns01", f"127.0.0.1:{self.dns_port}"]
        dns += ["-management", f"127.0.0.1:{self.dns_mgmt_port}"]
        log = open(self.dir / "challtestsrv.log", "ab")  # noqa: SIM115 - the process keeps it
        self.procs.append(subprocess.Popen(dns, stdout=log, stderr=subprocess.STDOUT))
        log = open(self.dir / "pebble.log", "ab")  # noqa: SIM115 - the process keeps it
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1"}
        env.pop("PEBBLE_VA_ALWAYS_VALID", None)
        self.procs.append(
            subprocess.Popen(
                [
                    "pebble",
                    "-config",
                    str(self.dir / "pebble.json"),
                    "-dnsserver",
                    f"127.0.0.1:{self.dns_port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self._get(self.directory_url)
                self._dns("set-default-ipv4", {"ip": "127.0.0.9"})
                return self
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                    self.stop()
                    raise RuntimeError(f"pebble did not start; see {self.dir}/pebble.log") from None
                time.sleep(0.2)

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError):
                proc.terminate()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.procs = []

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.api_ca))
        with urllib.request.urlopen(url, timeout=5, context=context) as resp:
            return bytes(resp.read())

    def _dns(self, call: str, data: dict[str, object]) -> None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.dns_mgmt_port}/{call}", data=json.dumps(data).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()

    def root_pem(self) -> str:
        """The root Pebble issues from (new at every start): what `curl --cacert` needs."""
        return self._get(f"https://127.0.0.1:{self.mgmt_port}/roots/0").decode()

    def point_all_at(self, ip: str) -> None:
        """Every name resolves to ip (an A record), unless `point` says otherwise for it."""
        self._dns("set-default-ipv4", {"ip": ip})

    def point(self, host: str, ip: str) -> None:
        self._dns("add-a", {"host": host.rstrip(".") + ".", "addresses": [ip]})

    def unpoint(self, host: str) -> None:
        self._dns("clear-a", {"host": host.rstrip(".") + "."})


def gateway(client: object) -> str:
    """The address the sandboxes reach this machine at (Docker's default bridge)."""
    network = client.networks.get("bridge")  # type: ignore[attr-defined]
    config = network.attrs["IPAM"]["Config"][0]
    # An engine that picked its bridge's subnet itself may not list the gateway: docker0 is its first address.
    return str(config.get("Gateway") or ipaddress.ip_network(config["Subnet"])[1])


def started(directory: Path, client: object) -> Pebble:
    return Pebble(directory, gateway(client)).start()


if __name__ == "__main__":  # by hand: python -m tests.e2e.pebble DIR (Ctrl-C stops it)
    import sys

    import docker

    pebble = started(Path(sys.argv[1]), docker.from_env())
    print(json.dumps({"directory": pebble.directory_url, "api_ca": str(pebble.api_ca),
                      "dns_mgmt": pebble.dns_mgmt_port, "mgmt": pebble.mgmt_port}), flush=True)  # fmt: skip
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pebble.stop()

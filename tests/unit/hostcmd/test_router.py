"""provisioner-router's nginx file, as a string."""

from __future__ import annotations

from provisioner.hostcmd import router


def test_local_tasks_first_then_the_other_nodes_and_the_router_port_serves_local_tasks_only():
    tasks = [
        router.Task("shop", "172.18.1.4", 5000, ("shop.example.com",)),
        router.Task("shop", "172.18.1.3", 5000, ("shop.example.com", "www.shop.example.com")),
    ]
    text = router.render(tasks, ["10.0.0.2", "fd00::3"], 8480)
    assert text.startswith(router.HEADER)
    cluster = text[text.index("upstream provisioner-cluster-shop") :].split("}", 1)[0]
    assert cluster.splitlines()[1:] == [
        "    server 172.18.1.3:5000 max_fails=1 fail_timeout=3s;",
        "    server 172.18.1.4:5000 max_fails=1 fail_timeout=3s;",
        "    server 10.0.0.2:8480 backup;",
        "    server [fd00::3]:8480 backup;",
        "    keepalive 16;",
    ]
    here = text[text.index("upstream provisioner-here-shop") :].split("}", 1)[0]
    assert "backup" not in here and "172.18.1.3:5000" in here
    assert "    listen 80;\n    server_name shop.example.com www.shop.example.com;" in text
    assert "    listen 8480;\n    server_name shop.example.com www.shop.example.com;" in text
    assert text.count("proxy_pass http://provisioner-here-shop;") == 1
    assert "proxy_next_upstream error timeout" in text


def test_no_task_no_server_and_peers_are_only_addresses():
    assert router.render([], ["10.0.0.2"], 8480) == router.HEADER
    settings = type("S", (), {"swarm_peers": ("10.0.0.2", "evil; }", "fd00::1")})()
    assert router.peers_of(settings) == ["10.0.0.2", "fd00::1"]  # type: ignore[arg-type]


def test_the_router_port_says_503_when_no_local_task_could_be_reached():
    """A task stopping on a draining node refuses connections: the asking node must hear "not here now"
    (503, which it moves on after) rather than nginx's 502, which it would hand to the client."""
    text = router.render([router.Task("shop", "172.18.1.4", 5000, ("shop.example.com",))], ["10.0.0.2"], 8480)
    port80, routerport = text.split("    listen 80;", 1)[1].split("    listen 8480;")
    assert "error_page" not in port80  # an app's own answers pass through on port 80
    assert "http_503" in port80.split("proxy_next_upstream ", 1)[1].split(";")[0]
    assert "error_page 502 504 =503 /.provisioner-not-here;" in routerport
    assert "location = /.provisioner-not-here {\n        internal;\n        return 503;" in routerport

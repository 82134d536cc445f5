#!/usr/bin/python3
"""Mounts the Hubble certificates of the rendered chart as the kubelet would, for a test.

Reads helm-template's output (stdin), writes the Secrets' keys into ROOT + the mountPath of the
projected volumes that the cilium DaemonSet (container cilium-agent) and the hubble-relay
Deployment mount, under the file names the chart gives them, and prints two lines: the agent's
Hubble TLS options from the cilium-config ConfigMap, and hubble-relay's TLS arguments from the
Deployment, each path under ROOT. Also writes ROOT/relay-ca.crt: the CA hubble-ui trusts for the
relay (the hubble-relay-server-certs Secret's ca.crt, as hubble-ui's Deployment mounts it).
  helm-template cilium deploy/helm/cilium ... | chart_tls.py ROOT
"""
import base64
import os
import shlex
import sys

import yaml


def find(docs, kind, name):
    for d in docs:
        if d and d.get("kind") == kind and d["metadata"]["name"] == name:
            return d
    sys.exit(f"chart_tls: no {kind} {name} in the rendering")


def mount(docs, workload, container, root):
    """Writes the projected Secret volumes `container` mounts; returns (mountPath -> dir)."""
    spec = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    ctr = next(c for c in spec["containers"] if c["name"] == container)
    for vm in ctr.get("volumeMounts", []):
        vol = volumes[vm["name"]]
        if "projected" not in vol:
            continue
        mode = vol["projected"].get("defaultMode", 0o644)
        for src in vol["projected"]["sources"]:
            secret = find(docs, "Secret", src["secret"]["name"])
            for item in src["secret"]["items"]:
                path = root + vm["mountPath"] + "/" + item["path"]
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(base64.b64decode(secret["data"][item["key"]]))
                os.chmod(path, mode)


def main():
    root = os.path.abspath(sys.argv[1])
    docs = list(yaml.safe_load_all(sys.stdin))
    ds = find(docs, "DaemonSet", "cilium")
    mount(docs, ds, "cilium-agent", root)
    relay = find(docs, "Deployment", "hubble-relay")
    mount(docs, relay, "hubble-relay", root)
    ca = find(docs, "Secret", "hubble-relay-server-certs")["data"]["ca.crt"]
    with open(root + "/relay-ca.crt", "wb") as f:
        f.write(base64.b64decode(ca))

    data = find(docs, "ConfigMap", "cilium-config")["data"]
    agent = []
    for key in ("hubble-disable-tls", "hubble-tls-cert-file", "hubble-tls-key-file",
                "hubble-tls-client-ca-files"):
        value = data[key]
        if value.startswith("/"):
            value = root + value
        agent.append(f"--{key}={value}")
    print(shlex.join(agent))

    args = relay["spec"]["template"]["spec"]["containers"][0]["args"]
    tls = []
    for a in args:
        if a.startswith("--tls-") or a.startswith("--disable-"):
            name, _, value = a.partition("=")
            tls.append(f"{name}={root + value}" if value.startswith("/") else a)
    print(shlex.join(tls))


if __name__ == "__main__":
    main()

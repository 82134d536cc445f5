#!/usr/bin/env python3
"""Packages a static binary as a one-layer OCI image archive (an OCI image layout in a tar) that
`ctr images import` accepts, so the containerd e2e test needs no registry.

usage: make_image.py <binary> <image name> <output.tar>
"""
import hashlib
import io
import json
import sys
import tarfile


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def tar_bytes(entries):
    """A deterministic tar of (name, bytes, mode) entries: same input, same digest."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uname = info.gname = ""
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main():
    binary, name, out = sys.argv[1:4]
    with open(binary, "rb") as f:
        exe = f.read()
    layer = tar_bytes([("pause", exe, 0o755)])
    layer_digest, layer_size = blob(layer)
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }, sort_keys=True).encode()
    config_digest, config_size = blob(config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}],
    }, sort_keys=True).encode()
    manifest_digest, manifest_size = blob(manifest)
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]},
        }],
    }, sort_keys=True).encode()
    entries = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644),
               ("index.json", index, 0o644)]
    for digest, data in ((layer_digest, layer), (config_digest, config),
                         (manifest_digest, manifest)):
        entries.append(("blobs/sha256/" + digest.split(":")[1], data, 0o644))
    with open(out, "wb") as f:
        f.write(tar_bytes(entries))


if __name__ == "__main__":
    main()

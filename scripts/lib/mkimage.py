#!/usr/bin/env python3
"""Pack a root filesystem directory into a single-platform OCI image archive.

The archive holds both an OCI layout (oci-layout, index.json) and a Docker `manifest.json`,
so `ctr image import`, `nerdctl load` and `docker load` all accept it. The output is
byte-for-byte reproducible: entries are sorted, owned by 0:0 and carry a fixed mtime, so a
rebuild with unchanged inputs yields the same digests.

Usage:
  mkimage.py --rootfs DIR --out FILE.tar --name REF --arch GOARCH [--variant V]
             [--entrypoint JSON] [--cmd JSON] [--env K=V ...]
             [--add SRC:DEST[:MODE] ...]
"""
import argparse
import hashlib
import io
import json
import os
import stat
import sys
import tarfile

MTIME = 1700000000

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def tarinfo(name, type_, mode, size=0, linkname=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.linkname = type_, mode, size, linkname
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, 0, 0, "", ""
    return ti


def build_layer(rootfs, extra):
    """extra: list of (dest path without leading '/', bytes, mode) added after rootfs."""
    buf = io.BytesIO()
    extra_names = {dest for dest, _, _ in extra}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, rootfs)
            entries = sorted(filenames)
            if rel_dir != ".":
                st = os.lstat(dirpath)
                tar.addfile(tarinfo(rel_dir, tarfile.DIRTYPE, stat.S_IMODE(st.st_mode)))
            for fn in entries:
                full = os.path.join(dirpath, fn)
                rel = os.path.normpath(os.path.join(rel_dir, fn))
                if rel in extra_names:
                    continue
                st = os.lstat(full)
                mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISLNK(st.st_mode):
                    tar.addfile(tarinfo(rel, tarfile.SYMTYPE, 0o777, linkname=os.readlink(full)))
                elif stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as f:
                        tar.addfile(tarinfo(rel, tarfile.REGTYPE, mode, size=st.st_size), f)
                else:
                    sys.exit(f"mkimage: {full}: only files, directories and symlinks are supported")
            # Symlinks to directories show up in dirnames; os.walk does not descend into them.
            for dn in list(dirnames):
                full = os.path.join(dirpath, dn)
                if os.path.islink(full):
                    rel = os.path.normpath(os.path.join(rel_dir, dn))
                    tar.addfile(tarinfo(rel, tarfile.SYMTYPE, 0o777, linkname=os.readlink(full)))
                    dirnames.remove(dn)
        for dest, data, mode in extra:
            tar.addfile(tarinfo(dest, tarfile.REGTYPE, mode, size=len(data)), io.BytesIO(data))
    return buf.getvalue()


def blob(blobs, data, media_type):
    digest = hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def canonical(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True, help="full image reference, e.g. crossarch.test/busybox:arm64")
    ap.add_argument("--arch", required=True, help="GOARCH: amd64, arm64, arm, s390x, riscv64, ppc64le")
    ap.add_argument("--variant", default="")
    ap.add_argument("--entrypoint", default="null", help="JSON list or null")
    ap.add_argument("--cmd", default='["sh"]', help="JSON list or null")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--add", action="append", default=[], help="SRC:DEST[:MODE] extra file in the layer")
    a = ap.parse_args()

    extra = []
    for spec in a.add:
        parts = spec.split(":")
        src, dest = parts[0], parts[1].lstrip("/")
        mode = int(parts[2], 8) if len(parts) > 2 else 0o755
        with open(src, "rb") as f:
            extra.append((dest, f.read(), mode))

    blobs = {}
    layer_bytes = build_layer(a.rootfs, extra)
    layer = blob(blobs, layer_bytes, OCI_LAYER)
    platform = {"architecture": a.arch, "os": "linux"}
    if a.variant:
        platform["variant"] = a.variant
    config = dict(platform)
    config.update({
        "created": "2023-11-14T22:13:20Z",
        "config": {
            "Env": a.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": json.loads(a.entrypoint),
            "Cmd": json.loads(a.cmd),
            "WorkingDir": "/",
            "Labels": {"org.opencontainers.image.source": "crossarch scripts/fixtures.sh"},
        },
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "crossarch scripts/fixtures.sh"}],
    })
    config_desc = blob(blobs, canonical(config), OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": [layer]}
    manifest_desc = blob(blobs, canonical(manifest), OCI_MANIFEST)
    manifest_desc["platform"] = platform
    manifest_desc["annotations"] = {
        "io.containerd.image.name": a.name,
        "org.opencontainers.image.ref.name": a.name,
    }
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [manifest_desc]}
    docker_manifest = [{
        "Config": "blobs/sha256/" + config_desc["digest"][7:],
        "RepoTags": [a.name],
        "Layers": ["blobs/sha256/" + layer["digest"][7:]],
    }]

    files = [
        ("oci-layout", canonical({"imageLayoutVersion": "1.0.0"})),
        ("index.json", canonical(index)),
        ("manifest.json", canonical(docker_manifest)),
    ] + [("blobs/sha256/" + d, data) for d, data in sorted(blobs.items())]

    tmp = a.out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            tar.addfile(tarinfo(d, tarfile.DIRTYPE, 0o755))
        for name, data in files:
            tar.addfile(tarinfo(name, tarfile.REGTYPE, 0o644, size=len(data)), io.BytesIO(data))
    os.replace(tmp, a.out)
    print(f"{a.out}: {a.name} linux/{a.arch}{'/' + a.variant if a.variant else ''} "
          f"manifest {manifest_desc['digest'][:19]} layer {len(layer_bytes) // 1024} KiB")


if __name__ == "__main__":
    main()

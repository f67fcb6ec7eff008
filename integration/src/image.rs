//! A minimal OCI image archive made from a directory, for when the fixture images are
//! not built: one uncompressed layer, named `localhost/crossarch/busybox:test`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::OutputExt;
use crate::{host_arch, CONTAINER_PATH};

pub const IMAGE_NAME: &str = "localhost/crossarch/busybox:test";

/// Stores `data` as a blob of the layout at `layout`; returns its digest (`sha256:...`).
fn put_blob(layout: &Path, data: &[u8]) -> String {
    let tmp = layout.join("blob.tmp");
    fs::write(&tmp, data).unwrap();
    let hex = sha256_file(&tmp);
    fs::rename(&tmp, layout.join("blobs/sha256").join(&hex)).unwrap();
    format!("sha256:{hex}")
}

fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum: {}", out.show());
    out.stdout_text()
        .split_whitespace()
        .next()
        .expect("sha256sum prints a digest")
        .to_string()
}

/// Builds `<work>/image.tar` from the root filesystem `rootfs`.
pub fn oci_archive(rootfs: &Path, work: &Path) -> PathBuf {
    oci_archive_named(rootfs, work, IMAGE_NAME, &["sh"])
}

/// Builds `<work>/image.tar` from the root filesystem `rootfs`: an image of this host's
/// platform named `name`, whose Cmd is `cmd`.
pub fn oci_archive_named(rootfs: &Path, work: &Path, name: &str, cmd: &[&str]) -> PathBuf {
    let layout = work.join("layout");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer_tar = work.join("layer.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .arg("--numeric-owner")
        .arg("-cf")
        .arg(&layer_tar)
        .arg(".")
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar the layer: {}", out.show());
    let layer = fs::read(&layer_tar).unwrap();
    let layer_size = layer.len();
    let layer_digest = put_blob(&layout, &layer);

    let config = serde_json::json!({
        "architecture": host_arch(),
        "os": "linux",
        "config": {"Env": [CONTAINER_PATH], "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string();
    let config_digest = put_blob(&layout, config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer_size,
        }],
    })
    .to_string();
    let manifest_digest = put_blob(&layout, manifest.as_bytes());
    let target = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest,
        "size": manifest.len(),
        "platform": {"architecture": host_arch(), "os": "linux"},
    });
    let archive = work.join("image.tar");
    archive_layout(&layout, target, name, &archive);
    archive
}

/// Writes the layout's index.json, whose one image is `target` named `name`, and its
/// oci-layout, then tars the layout into `archive`.
fn archive_layout(layout: &Path, mut target: serde_json::Value, name: &str, archive: &Path) {
    target["annotations"] = serde_json::json!({
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name.rsplit_once(':').map_or("latest", |(_, tag)| tag),
    });
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [target]});
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let out = Command::new("tar")
        .arg("-C")
        .arg(layout)
        .arg("-cf")
        .arg(archive)
        .arg("oci-layout")
        .arg("index.json")
        .arg("blobs")
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar the image: {}", out.show());
}

/// Builds `<work>/multi.tar`: one image named `name` whose target is an image index of the
/// single-platform images in `archives` (OCI archives such as the fixtures'), each manifest
/// with its platform, as a multi-arch tag of a registry is. Returns the archive and each
/// variant's `(architecture, manifest digest)`.
pub fn multi_platform_archive(
    archives: &[&Path],
    work: &Path,
    name: &str,
) -> (PathBuf, Vec<(String, String)>) {
    let layout = work.join("multi-layout");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let mut manifests = Vec::new();
    for archive in archives {
        // Each archive's blobs join the layout's; its index.json, read at once, is replaced
        // by the next one's.
        let out = Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-xf")
            .arg(archive)
            .arg("index.json")
            .arg("blobs")
            .output()
            .expect("run tar");
        assert!(
            out.status.success(),
            "untar {}: {}",
            archive.display(),
            out.show()
        );
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let mut manifest = index["manifests"][0].clone();
        assert!(
            manifest["platform"]["architecture"].is_string(),
            "{} names its platform: {index}",
            archive.display()
        );
        manifest.as_object_mut().unwrap().remove("annotations");
        manifests.push(manifest);
    }
    let variants = manifests
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let inner = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    })
    .to_string();
    let inner_digest = put_blob(&layout, inner.as_bytes());
    let target = serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": inner_digest,
        "size": inner.len(),
    });
    let archive = work.join("multi.tar");
    archive_layout(&layout, target, name, &archive);
    (archive, variants)
}

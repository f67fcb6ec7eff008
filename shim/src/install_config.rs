//! `containerd-shim-crossarch-v2 install-config`: adds (or with `--undo` removes) the
//! `crossarch` runtime handler in containerd's config, so a Kubernetes RuntimeClass with
//! `handler: crossarch` reaches this shim. The edit keeps the file's comments, formatting and
//! other handlers; it is a pure text-in, text-out function, and only `main` touches the disk.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Key, Table, Value};

pub const HANDLER: &str = "crossarch";
pub const RUNTIME_TYPE: &str = "io.containerd.crossarch.v2";
const BACKUP_SUFFIX: &str = ".crossarch-backup";
/// Written above the handler's header: `--undo` removes only a handler that carries it, so a
/// handler the admin wrote by hand is never taken away.
const MARKER: &str = "# Added by `containerd-shim-crossarch-v2 install-config`; \
                      `install-config --undo` removes it.";

const USAGE: &str = "\
usage: containerd-shim-crossarch-v2 install-config [--config PATH] [--dry-run] [--undo]
                                                   [--restart] [--containerd-version X.Y]

Adds the `crossarch` runtime handler (runtime_type = \"io.containerd.crossarch.v2\") to
containerd's config, in the layout the file uses: `version = 2` (containerd 1.6/1.7) or
`version = 3` (containerd 2.x). A missing file is created for the installed containerd
(`containerd --version`, or --containerd-version). Comments, formatting and other handlers
are kept; a second run changes nothing.

  --config PATH              containerd's config (default /etc/containerd/config.toml)
  --dry-run                  print the change as a diff and write nothing
  --undo                     remove the handler install-config added, and nothing else
  --restart                  restart containerd (systemctl restart containerd) after a change
  --containerd-version X.Y   the containerd a new file is written for, instead of asking it
  -h, --help                 this help

Before every write the previous file is kept as PATH.crossarch-backup.
Exit status: 0 done or nothing to do, 1 failure, 2 usage error.";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error(
        "{path}: not valid TOML, so containerd cannot read it either: {cause}; fix the file first"
    )]
    Parse { path: String, cause: String },
    #[error(
        "{path} has no `version` key, so containerd reads it as a version 1 config; \
         install-config edits version 2 (containerd 1.6/1.7) and 3 (containerd 2.x) configs: \
         add `version = 2` after checking the file against `containerd config default`, \
         or add the handler by hand"
    )]
    NoVersion { path: String },
    #[error(
        "{path} is a version {version} config; install-config edits version 2 (containerd \
         1.6/1.7) and 3 (containerd 2.x) configs: migrate it (`containerd config migrate`) or \
         add the handler by hand"
    )]
    Version { path: String, version: String },
    #[error(
        "{path}: {table} is not a table ({what}), so the handler cannot be added beside it; \
         add [{header}] by hand"
    )]
    NotATable {
        path: String,
        table: String,
        what: String,
        header: String,
    },
    #[error(
        "{path} already has a runtime handler `crossarch` with runtime_type {found}; \
         install-config leaves it alone: rename it or set runtime_type = \"{RUNTIME_TYPE}\""
    )]
    Foreign { path: String, found: String },
    #[error(
        "{path}: the `crossarch` handler was not added by install-config (no marker comment \
         above [{header}]), so --undo leaves it; remove it by hand"
    )]
    NotOurs { path: String, header: String },
    #[error(
        "{path}: the `crossarch` handler was changed since install-config added it ({changed}), \
         so --undo leaves it; remove [{header}] by hand"
    )]
    Changed {
        path: String,
        changed: String,
        header: String,
    },
    #[error(
        "containerd {0} is not supported: install-config writes configs for containerd 1.6/1.7 \
         (version 2) and 2.x (version 3)"
    )]
    Containerd(String),
}

/// The two layouts of containerd's config that carry CRI runtime handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `version = 2`: containerd 1.6/1.7 (2.x migrates it on load).
    V2,
    /// `version = 3`: containerd 2.x, whose CRI runtime settings moved to their own plugin.
    V3,
}

impl Layout {
    fn plugin(self) -> &'static str {
        match self {
            Layout::V2 => crate::containerd_config::CRI_PLUGIN_V2,
            Layout::V3 => crate::containerd_config::CRI_PLUGIN_V3,
        }
    }

    /// containerd 2's `config default` writes literal (single-quoted) strings; 1.x basic ones.
    fn quote(self, s: &str) -> String {
        match self {
            Layout::V2 => format!("\"{s}\""),
            Layout::V3 => format!("'{s}'"),
        }
    }

    pub fn header(self) -> String {
        format!(
            "plugins.{}.containerd.runtimes.{HANDLER}",
            self.quote(self.plugin())
        )
    }

    /// The config layout for a containerd version string (`1.6.20~ds1`, `v2.0.4`).
    pub fn for_containerd(version: &str) -> Result<Layout, Error> {
        let v = version.trim().trim_start_matches('v');
        let mut parts = v.split(|c: char| !c.is_ascii_digit());
        let major = parts.next().and_then(|s| s.parse::<u32>().ok());
        let minor = parts.next().and_then(|s| s.parse::<u32>().ok());
        match (major, minor) {
            // Version 2 configs arrived in 1.3; the CRI runtime tables kept their place
            // through 1.7.
            (Some(1), Some(m)) if m >= 3 => Ok(Layout::V2),
            (Some(2), _) => Ok(Layout::V3),
            _ => Err(Error::Containerd(version.trim().to_string())),
        }
    }

    /// A new config: containerd's defaults plus the handler.
    pub fn new_file(self) -> String {
        let version = match self {
            Layout::V2 => 2,
            Layout::V3 => 3,
        };
        format!(
            "# containerd's config, written by `containerd-shim-crossarch-v2 install-config`.\n\
             # Everything not set here keeps containerd's default (`containerd config default`).\n\
             version = {version}\n\
             \n\
             {MARKER}\n\
             [{}]\n  runtime_type = {}\n",
            self.header(),
            self.quote(RUNTIME_TYPE)
        )
    }
}

/// What an edit does to a config's text.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    Changed(String),
    /// Nothing to do, and why.
    Unchanged(String),
}

fn parse(text: &str, path: &str) -> Result<(DocumentMut, Layout), Error> {
    let doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| Error::Parse {
            path: path.into(),
            cause: e.to_string().trim().replace('\n', " "),
        })?;
    let layout = match doc.get("version") {
        None => return Err(Error::NoVersion { path: path.into() }),
        Some(v) => match v.as_integer() {
            Some(2) => Layout::V2,
            Some(3) => Layout::V3,
            _ => {
                return Err(Error::Version {
                    path: path.into(),
                    version: v.to_string().trim().into(),
                })
            }
        },
    };
    Ok((doc, layout))
}

/// The leading whitespace of the last line of a decor prefix: how the file indents a header.
fn indent_of(prefix: &str) -> String {
    let last = prefix.rsplit('\n').next().unwrap_or("");
    last.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect()
}

/// Adds the handler to a config's text. Unchanged when a handler with our runtime_type is
/// already there; an error when a `crossarch` handler runs something else.
pub fn add(text: &str, path: &str) -> Result<Edit, Error> {
    let (mut doc, layout) = parse(text, path)?;
    let header = layout.header();
    let keys = [
        (Key::parse("plugins").ok(), "plugins"),
        (
            Key::parse(&layout.quote(layout.plugin())).ok(),
            layout.plugin(),
        ),
        (None, "containerd"),
        (None, "runtimes"),
    ];
    let mut table: &mut Table = doc.as_table_mut();
    let mut walked = Vec::new();
    for (key, name) in keys {
        walked.push(name);
        let key = key
            .and_then(|mut k| k.pop())
            .unwrap_or_else(|| Key::new(name));
        let item = table.entry_format(&key).or_insert_with(|| {
            let mut t = Table::new();
            // Implicit: no empty [plugins] headers for parents that only hold our table.
            t.set_implicit(true);
            Item::Table(t)
        });
        let what = item.type_name().to_string();
        table = item.as_table_mut().ok_or_else(|| Error::NotATable {
            path: path.into(),
            table: walked.join("."),
            what,
            header: header.clone(),
        })?;
    }
    let runtimes = table;
    if let Some(existing) = runtimes.get(HANDLER) {
        let found = existing
            .get("runtime_type")
            .and_then(Item::as_str)
            .map(str::to_string);
        return match found.as_deref() {
            Some(RUNTIME_TYPE) => Ok(Edit::Unchanged(format!(
                "{path} already has the crossarch runtime handler ([{header}]); nothing to do"
            ))),
            other => Err(Error::Foreign {
                path: path.into(),
                found: other.map_or("unset".into(), |s| format!("\"{s}\"")),
            }),
        };
    }
    // Indent like the sibling handlers (runc in containerd's own default config).
    let (header_indent, key_indent) = runtimes
        .iter()
        .find_map(|(_, item)| item.as_table().filter(|t| !t.is_implicit()))
        .map(|t| {
            let h = indent_of(t.decor().prefix().and_then(|p| p.as_str()).unwrap_or(""));
            let k = t
                .iter()
                .find(|(_, item)| item.is_value())
                .and_then(|(name, _)| t.get_key_value(name))
                .and_then(|(k, _)| k.leaf_decor().prefix().and_then(|p| p.as_str()))
                .map(indent_of)
                .unwrap_or_else(|| format!("{h}  "));
            (h, k)
        })
        .unwrap_or_else(|| (String::new(), "  ".into()));
    let mut ours = Table::new();
    ours.decor_mut()
        .set_prefix(format!("\n{header_indent}{MARKER}\n{header_indent}"));
    let value: Value = layout
        .quote(RUNTIME_TYPE)
        .parse()
        .expect("a quoted string is a TOML value");
    let mut key = Key::new("runtime_type");
    key.leaf_decor_mut().set_prefix(key_indent);
    ours.insert_formatted(&key, Item::Value(value));
    runtimes.insert(HANDLER, Item::Table(ours));
    Ok(Edit::Changed(doc.to_string()))
}

/// Removes the handler `add` wrote: only if it carries the marker and holds nothing but our
/// runtime_type, so nothing the admin wrote or changed is lost.
pub fn remove(text: &str, path: &str) -> Result<Edit, Error> {
    let (mut doc, layout) = parse(text, path)?;
    let header = layout.header();
    let runtimes = doc
        .get_mut("plugins")
        .and_then(|p| p.get_mut(layout.plugin()))
        .and_then(|p| p.get_mut("containerd"))
        .and_then(|c| c.get_mut("runtimes"))
        .and_then(Item::as_table_mut);
    let Some(runtimes) = runtimes.filter(|r| r.contains_key(HANDLER)) else {
        return Ok(Edit::Unchanged(format!(
            "{path} has no crossarch runtime handler; nothing to undo"
        )));
    };
    let ours = runtimes.get(HANDLER).and_then(Item::as_table);
    let marked = ours
        .and_then(|t| t.decor().prefix())
        .and_then(|p| p.as_str())
        .is_some_and(|p| p.contains(MARKER));
    if !marked {
        return Err(Error::NotOurs {
            path: path.into(),
            header,
        });
    }
    let ours = ours.expect("a marked handler is a table");
    let mut changed: Vec<String> = ours
        .iter()
        .filter(|(k, _)| *k != "runtime_type")
        .map(|(k, _)| format!("{k} added"))
        .collect();
    match ours.get("runtime_type").and_then(Item::as_str) {
        Some(RUNTIME_TYPE) => {}
        Some(other) => changed.push(format!("runtime_type is \"{other}\"")),
        None => changed.push("runtime_type removed".into()),
    }
    if !changed.is_empty() {
        return Err(Error::Changed {
            path: path.into(),
            changed: changed.join(", "),
            header,
        });
    }
    runtimes.remove(HANDLER);
    let mut out = doc.to_string();
    // The blank line `add` put above the marker goes with it.
    if !text.contains("\n\n\n") {
        while out.contains("\n\n\n") {
            out = out.replace("\n\n\n", "\n\n");
        }
    }
    Ok(Edit::Changed(out))
}

/// A unified diff of one hunk: an edit here inserts or removes one contiguous block.
pub fn diff(before: &str, after: &str, path: &str) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let max_suffix = a.len().min(b.len()) - prefix;
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max_suffix)
        .take_while(|(x, y)| x == y)
        .count();
    const CONTEXT: usize = 3;
    let start = prefix.saturating_sub(CONTEXT);
    let a_end = (a.len() - suffix + CONTEXT).min(a.len());
    let b_end = (b.len() - suffix + CONTEXT).min(b.len());
    let mut out = format!("--- {path}\n+++ {path}\n");
    let range = |start: usize, end: usize| {
        let n = end - start;
        format!("{},{n}", if n == 0 { start } else { start + 1 })
    };
    out += &format!("@@ -{} +{} @@\n", range(start, a_end), range(start, b_end));
    for l in &a[start..prefix] {
        out += &format!(" {l}\n");
    }
    for l in &a[prefix..a.len() - suffix] {
        out += &format!("-{l}\n");
    }
    for l in &b[prefix..b.len() - suffix] {
        out += &format!("+{l}\n");
    }
    for l in &a[a.len() - suffix..a_end] {
        out += &format!(" {l}\n");
    }
    out
}

struct Args {
    config: PathBuf,
    dry_run: bool,
    undo: bool,
    restart: bool,
    containerd_version: Option<String>,
}

fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let mut out = Args {
        config: crate::containerd_config::DEFAULT_PATH.into(),
        dry_run: false,
        undo: false,
        restart: false,
        containerd_version: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--dry-run" => out.dry_run = true,
            "--undo" => out.undo = true,
            "--restart" => out.restart = true,
            "--config" => {
                out.config = it.next().ok_or("--config needs a PATH")?.into();
            }
            "--containerd-version" => {
                out.containerd_version = Some(
                    it.next()
                        .ok_or("--containerd-version needs a version")?
                        .clone(),
                );
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(out))
}

fn installed_containerd_version() -> Result<String, String> {
    let out = std::process::Command::new("containerd")
        .arg("--version")
        .output()
        .map_err(|e| {
            format!(
                "cannot run `containerd --version` ({e}) to choose the config layout; \
                 pass --containerd-version"
            )
        })?;
    // "containerd github.com/containerd/containerd 1.6.20~ds1 <revision>"
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "`containerd --version` printed {:?}, which names no version; pass \
                 --containerd-version",
                text.trim()
            )
        })
}

/// Replaces `path` with `text` through a temporary file in the same directory, so containerd
/// never reads half a config; the new file keeps the old one's mode and owner.
fn write_atomically(
    path: &Path,
    text: &str,
    like: Option<&std::fs::Metadata>,
) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.crossarch-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        let mode = like.map_or(0o644, |m| m.permissions().mode() & 0o7777);
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some(m) = like {
            std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

fn restart_containerd() -> Result<(), String> {
    match std::process::Command::new("systemctl")
        .args(["restart", "containerd"])
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "`systemctl restart containerd` failed ({s}); the config is written, restart \
             containerd by hand"
        )),
        Err(e) => Err(format!(
            "cannot run `systemctl restart containerd` ({e}); the config is written, restart \
             containerd by hand"
        )),
    }
}

pub fn main(args: &[String]) -> i32 {
    let args = match parse_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("install-config: {e}\n{USAGE}");
            return 2;
        }
    };
    match run(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("install-config: {e}");
            1
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    // Edit what a symlinked config points to, not the link.
    let path = std::fs::canonicalize(&args.config).unwrap_or_else(|_| args.config.clone());
    let shown = path.display().to_string();
    let (before, meta) = match std::fs::read_to_string(&path) {
        Ok(t) => (Some(t), std::fs::metadata(&path).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
    };
    let edit = match (&before, args.undo) {
        (Some(text), false) => add(text, &shown).map_err(|e| e.to_string())?,
        (Some(text), true) => remove(text, &shown).map_err(|e| e.to_string())?,
        (None, true) => Edit::Unchanged(format!("{shown} does not exist; nothing to undo")),
        (None, false) => {
            let version = match &args.containerd_version {
                Some(v) => v.clone(),
                None => installed_containerd_version()?,
            };
            let layout = Layout::for_containerd(&version).map_err(|e| e.to_string())?;
            Edit::Changed(layout.new_file())
        }
    };
    let after = match edit {
        Edit::Unchanged(why) => {
            println!("install-config: {why}");
            return Ok(());
        }
        Edit::Changed(after) => after,
    };
    if args.dry_run {
        print!("{}", diff(before.as_deref().unwrap_or(""), &after, &shown));
        println!("install-config: --dry-run: {shown} was not changed");
        return Ok(());
    }
    if let Some(before) = &before {
        let backup = PathBuf::from(format!("{shown}{BACKUP_SUFFIX}"));
        write_atomically(&backup, before, meta.as_ref())?;
        println!(
            "install-config: kept the previous {shown} as {}",
            backup.display()
        );
    }
    if let (None, Some(dir)) = (&before, path.parent()) {
        // A node image may have no /etc/containerd yet.
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_atomically(&path, &after, meta.as_ref())?;
    let done = if args.undo {
        "removed the crossarch runtime handler from"
    } else if before.is_some() {
        "added the crossarch runtime handler to"
    } else {
        "created with the crossarch runtime handler:"
    };
    println!("install-config: {done} {shown}");
    if args.restart {
        restart_containerd()?;
        println!("install-config: restarted containerd");
    } else {
        println!(
            "install-config: restart containerd to load the change: systemctl restart containerd \
             (or run install-config --restart)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_DEFAULT: &str =
        include_str!("../tests/fixtures/install_config/containerd-1.6-default.toml");
    const V3_DEFAULT: &str =
        include_str!("../tests/fixtures/install_config/containerd-2-default.toml");
    const COMMENTED: &str = include_str!("../tests/fixtures/install_config/commented-runc.toml");

    fn changed(e: Edit) -> String {
        match e {
            Edit::Changed(t) => t,
            Edit::Unchanged(why) => panic!("expected a change, got: {why}"),
        }
    }

    fn runtime_type(text: &str, plugin: &str) -> Option<String> {
        let v: toml::Value = toml::from_str(text).unwrap();
        v.get("plugins")?
            .get(plugin)?
            .get("containerd")?
            .get("runtimes")?
            .get(HANDLER)?
            .get("runtime_type")?
            .as_str()
            .map(str::to_string)
    }

    /// The lines an edit added, for asserting that nothing else moved.
    fn added_lines(before: &str, after: &str) -> Vec<String> {
        let d = diff(before, after, "x");
        assert!(
            !d.lines()
                .any(|l| l.starts_with('-') && !l.starts_with("---")),
            "{d}"
        );
        d.lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .map(|l| l[1..].to_string())
            .collect()
    }

    #[test]
    fn containerd_1_6_default_gets_the_handler_beside_runc() {
        let after = changed(add(V2_DEFAULT, "c").unwrap());
        assert_eq!(
            runtime_type(&after, "io.containerd.grpc.v1.cri").as_deref(),
            Some(RUNTIME_TYPE)
        );
        // Which blank line a diff counts as added is arbitrary; the rest is not.
        let mut added = added_lines(V2_DEFAULT, &after);
        added.retain(|l| !l.is_empty());
        assert_eq!(
            added,
            vec![
                format!("        {MARKER}"),
                "        [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crossarch]"
                    .into(),
                "          runtime_type = \"io.containerd.crossarch.v2\"".into(),
            ]
        );
        // Beside runc, inside the runtimes tables, not at the end of the file.
        let at = after.find("runtimes.crossarch]").unwrap();
        assert!(after.find("runtimes.runc.options]").unwrap() < at);
        assert!(
            at < after
                .find("containerd.untrusted_workload_runtime]")
                .unwrap()
        );
    }

    #[test]
    fn containerd_2_default_gets_the_handler_in_the_runtime_plugin_with_single_quotes() {
        let after = changed(add(V3_DEFAULT, "c").unwrap());
        assert_eq!(
            runtime_type(&after, "io.containerd.cri.v1.runtime").as_deref(),
            Some(RUNTIME_TYPE)
        );
        let added = added_lines(V3_DEFAULT, &after);
        assert!(
            added.contains(
                &"        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crossarch]"
                    .to_string()
            ),
            "{added:?}"
        );
        assert!(
            added.contains(&"          runtime_type = 'io.containerd.crossarch.v2'".to_string())
        );
    }

    #[test]
    fn comments_formatting_and_the_runc_handler_are_kept() {
        let after = changed(add(COMMENTED, "c").unwrap());
        assert!(after.starts_with(COMMENTED.split("[plugins").next().unwrap()));
        let added = added_lines(COMMENTED, &after);
        assert_eq!(added.len(), 4, "{added:?}");
        for line in COMMENTED.lines() {
            assert!(after.contains(line), "lost line {line:?}");
        }
    }

    #[test]
    fn a_second_add_changes_nothing() {
        for fixture in [V2_DEFAULT, V3_DEFAULT, COMMENTED] {
            let once = changed(add(fixture, "c").unwrap());
            match add(&once, "c").unwrap() {
                Edit::Unchanged(why) => assert!(why.contains("nothing to do"), "{why}"),
                Edit::Changed(t) => {
                    panic!("second add changed the file:\n{}", diff(&once, &t, "c"))
                }
            }
        }
    }

    #[test]
    fn undo_gives_back_the_file_byte_for_byte_and_is_idempotent() {
        for fixture in [V2_DEFAULT, V3_DEFAULT, COMMENTED] {
            let once = changed(add(fixture, "c").unwrap());
            let undone = changed(remove(&once, "c").unwrap());
            assert_eq!(undone, fixture, "{}", diff(fixture, &undone, "c"));
            assert!(matches!(remove(&undone, "c").unwrap(), Edit::Unchanged(_)));
        }
    }

    #[test]
    fn undo_leaves_a_handler_the_admin_wrote_or_changed() {
        let by_hand = format!(
            "{COMMENTED}\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crossarch]\n  \
             runtime_type = \"{RUNTIME_TYPE}\"\n"
        );
        assert!(matches!(add(&by_hand, "c").unwrap(), Edit::Unchanged(_)));
        let e = remove(&by_hand, "c").unwrap_err();
        assert!(matches!(e, Error::NotOurs { .. }), "{e}");

        let ours = changed(add(COMMENTED, "c").unwrap());
        let tuned = format!(
            "{ours}\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crossarch.options]\n  \
             ConfigPath = \"/etc/crossarch/pods.toml\"\n"
        );
        let e = remove(&tuned, "c").unwrap_err();
        assert!(e.to_string().contains("options added"), "{e}");
    }

    #[test]
    fn a_crossarch_handler_for_another_runtime_is_refused() {
        let text =
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crossarch]\n\
                    runtime_type = \"io.containerd.runc.v2\"\n";
        let e = add(text, "/etc/containerd/config.toml").unwrap_err();
        assert!(e.to_string().contains("io.containerd.runc.v2"), "{e}");
    }

    #[test]
    fn version_1_and_unknown_configs_are_refused() {
        let e = add("[plugins.cri]\n", "/etc/containerd/config.toml").unwrap_err();
        assert!(matches!(e, Error::NoVersion { .. }));
        assert!(e.to_string().contains("version 1"), "{e}");
        let e = add("version = 4\n", "c").unwrap_err();
        assert!(e.to_string().contains("version 4"), "{e}");
        let e = add("version = \n", "c").unwrap_err();
        assert!(matches!(e, Error::Parse { .. }), "{e}");
    }

    #[test]
    fn a_minimal_parent_gets_no_empty_headers() {
        let after = changed(add("version = 2\n", "c").unwrap());
        assert_eq!(
            after,
            format!(
                "version = 2\n\n{MARKER}\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crossarch]\n  \
                 runtime_type = \"io.containerd.crossarch.v2\"\n"
            )
        );
        assert_eq!(changed(remove(&after, "c").unwrap()), "version = 2\n");
    }

    #[test]
    fn new_files_follow_the_installed_containerd() {
        assert_eq!(Layout::for_containerd("1.6.20~ds1"), Ok(Layout::V2));
        assert_eq!(Layout::for_containerd("v1.7.27"), Ok(Layout::V2));
        assert_eq!(Layout::for_containerd("2.1.0"), Ok(Layout::V3));
        assert!(Layout::for_containerd("1.2.13").is_err());
        assert!(Layout::for_containerd("banana").is_err());
        for layout in [Layout::V2, Layout::V3] {
            let text = layout.new_file();
            assert_eq!(
                runtime_type(&text, layout.plugin()).as_deref(),
                Some(RUNTIME_TYPE)
            );
            assert!(matches!(add(&text, "c").unwrap(), Edit::Unchanged(_)));
            assert!(matches!(remove(&text, "c").unwrap(), Edit::Changed(_)));
        }
    }

    #[test]
    fn the_diff_shows_the_new_section_with_context() {
        let after = changed(add(COMMENTED, "/etc/containerd/config.toml").unwrap());
        let d = diff(COMMENTED, &after, "/etc/containerd/config.toml");
        assert!(
            d.starts_with("--- /etc/containerd/config.toml\n+++ /etc/containerd/config.toml\n@@ -")
        );
        assert_eq!(d.lines().filter(|l| l.starts_with(' ')).count(), 6, "{d}");
        assert!(
            d.contains("+  runtime_type = \"io.containerd.crossarch.v2\"")
                || d.contains("runtime_type = \"io.containerd.crossarch.v2\"")
        );
    }
}

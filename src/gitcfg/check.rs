//! The checks a commit's tree must pass before the server serves it. Each
//! finding is one line naming the file and what is wrong; any finding
//! rejects the commit.
//!
//! - every `boot.ipxe` is UTF-8 and starts with `#!ipxe`; every `secrets` is UTF-8;
//! - every `vars.toml` parses;
//! - for each enrolled machine, its script renders with its real variables
//!   and sample query values, and every `/files/...` it references resolves
//!   for that machine (own folder, profile, shared asset);
//! - no symlink leaves the folder it is in (`files/<x>/` or `profiles/<x>/`),
//!   or points at a `secrets` or `vars.toml`, and a folder that is a symlink
//!   stands only for another folder beside it, so nothing a machine may not
//!   read becomes readable.
//!
//! File sizes and submodules are checked on the commit itself before it is
//! written out (see [`super::sync`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::bootcfg::template::{self, Vars};
use crate::bootcfg::variables::{self, MachineVars};
use crate::datadir::assets::AssetIndex;
use crate::datadir::registry::{Machine, Registry};
use crate::datadir::{DataDir, SCRIPT_FILE, SECRETS_FILE, VARS_FILE, is_never_served};
use crate::server::parse_vars;
use crate::server::paths;
use crate::server::resolve::Roots;

/// Query values a script is rendered with, as iPXE would send them.
const SAMPLE_QUERY: [(&str, &str); 3] = [
    ("mac", "52:54:00:12:34:56"),
    ("platform", "efi"),
    ("buildarch", "x86_64"),
];

/// What the checks need besides the tree.
pub struct Context<'a> {
    pub registry: &'a Registry,
    pub assets: &'a AssetIndex,
    pub public_url: &'a str,
}

/// Checks the tree under `root` (holding `files/` and `profiles/`).
pub fn check_tree(root: &Path, cx: &Context) -> Vec<String> {
    let mut problems = BTreeSet::new();
    let tree = DataDir::new(root);
    let show = |path: &Path| {
        path.strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    for scope in scopes(&tree, &mut problems, &show) {
        check_symlinks(&scope, &scope, &mut problems, &show);
        if let Some(text) = read_text(&scope.join(SCRIPT_FILE), &mut problems, &show)
            && !text.starts_with("#!ipxe")
        {
            problems.insert(format!(
                "{}: does not start with #!ipxe, iPXE would refuse it",
                show(&scope.join(SCRIPT_FILE))
            ));
        }
        read_text(&scope.join(SECRETS_FILE), &mut problems, &show);
        read_vars(&scope, &mut problems, &show);
    }
    for machine in cx.registry.machines().iter().filter(|m| !m.is_revoked()) {
        check_machine(&tree, machine, cx, &mut problems, &show);
    }
    problems.into_iter().collect()
}

/// `files/<x>/` and `profiles/<x>/`: the folders a machine's scope is made of.
fn scopes(
    tree: &DataDir,
    problems: &mut BTreeSet<String>,
    show: &dyn Fn(&Path) -> String,
) -> Vec<PathBuf> {
    let mut scopes = Vec::new();
    for parent in [tree.files_dir(), tree.profiles_dir()] {
        match std::fs::symlink_metadata(&parent) {
            Ok(meta) if meta.file_type().is_symlink() => {
                problems.insert(format!(
                    "{}: is a symlink; it must be a folder",
                    show(&parent)
                ));
                continue;
            }
            Ok(_) => {}
            Err(_) => continue,
        }
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        let parent_real = parent.canonicalize().unwrap_or_else(|_| parent.clone());
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                // A folder standing for another of the same tree is shared
                // on purpose (and checked as that folder); any other is refused.
                Ok(kind) if kind.is_symlink() => {
                    let target = std::fs::read_link(&path).unwrap_or_default();
                    let inside = !target.is_absolute()
                        && path
                            .canonicalize()
                            .is_ok_and(|real| real.is_dir() && real.starts_with(&parent_real));
                    if !inside {
                        problems.insert(format!(
                            "{}: symlink to {}: a folder may only stand for another folder beside it",
                            show(&path),
                            target.display()
                        ));
                    }
                }
                Ok(kind) if kind.is_dir() => scopes.push(path),
                _ => {}
            }
        }
    }
    scopes.sort();
    scopes
}

fn check_symlinks(
    scope: &Path,
    dir: &Path,
    problems: &mut BTreeSet<String>,
    show: &dyn Fn(&Path) -> String,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            check_symlinks(scope, &path, problems, show);
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&path).unwrap_or_default();
            let real = path.canonicalize();
            let scope_real = scope.canonicalize().unwrap_or_else(|_| scope.to_path_buf());
            let problem = match &real {
                _ if target.is_absolute() => Some("points to an absolute path"),
                Err(_) => Some("points to nothing"),
                Ok(real) if !real.starts_with(&scope_real) => {
                    Some("points outside its folder (only machines of that folder may read it)")
                }
                Ok(real)
                    if real
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(is_never_served) =>
                {
                    Some("points to a file that is never served")
                }
                Ok(_) => None,
            };
            if let Some(problem) = problem {
                problems.insert(format!(
                    "{}: symlink to {}: {problem}",
                    show(&path),
                    target.display()
                ));
            }
        }
    }
}

/// The file's text, or `None` when it does not exist (or is not UTF-8,
/// which is a problem).
fn read_text(
    path: &Path,
    problems: &mut BTreeSet<String>,
    show: &dyn Fn(&Path) -> String,
) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(_) => {
            problems.insert(format!("{}: is not UTF-8 text", show(path)));
            None
        }
    }
}

fn read_vars(
    folder: &Path,
    problems: &mut BTreeSet<String>,
    show: &dyn Fn(&Path) -> String,
) -> Option<Vars> {
    let path = folder.join(VARS_FILE);
    let text = read_text(&path, problems, show)?;
    match parse_vars(&text) {
        Ok(vars) => Some(vars),
        Err(err) => {
            let err = format!("{err:#}").replace('\n', " ");
            problems.insert(format!("{}: does not parse: {}", show(&path), err.trim()));
            None
        }
    }
}

fn check_machine(
    tree: &DataDir,
    machine: &Machine,
    cx: &Context,
    problems: &mut BTreeSet<String>,
    show: &dyn Fn(&Path) -> String,
) {
    let roots = Roots::of(tree, machine);
    let Some((script_path, text)) = roots
        .scripts()
        .into_iter()
        .find_map(|path| std::fs::read_to_string(&path).ok().map(|t| (path, t)))
    else {
        return;
    };
    let mut vars: Vars = SAMPLE_QUERY
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for folder in roots.vars_folders() {
        if let Some(file_vars) = read_vars(folder, problems, show) {
            vars.extend(file_vars);
        }
    }
    MachineVars::of(machine, cx.public_url).insert_into(&mut vars);
    vars.insert(
        variables::SECRETS_URL.into(),
        variables::secrets_url(cx.public_url, "sample"),
    );
    let rendered = template::safe_substitute(&text, &vars);
    for reference in file_references(&rendered, cx.public_url) {
        if !resolves(&roots, &reference, cx.assets) {
            problems.insert(format!(
                "{} (as rendered for {}): /files/{reference} is in none of its folders and is no shared asset",
                show(&script_path),
                machine.name
            ));
        }
    }
}

/// The `/files/<path>` a rendered script fetches from this server, without
/// those built from iPXE's own settings at boot time (`${...}` left in).
fn file_references(script: &str, public_url: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in script.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        for word in line.split_whitespace() {
            let word = word.trim_matches(|c| c == '"' || c == '\'');
            let word = word.strip_prefix(public_url).unwrap_or(word);
            let Some(path) = word.strip_prefix("/files/") else {
                continue;
            };
            let path = path.split(['?', '#']).next().unwrap_or_default();
            if !path.is_empty() && !path.contains('$') && !found.iter().any(|f| f == path) {
                found.push(path.to_string());
            }
        }
    }
    found
}

fn resolves(roots: &Roots, reference: &str, assets: &AssetIndex) -> bool {
    let Ok(segments) = paths::decode_segments(reference) else {
        return false;
    };
    roots
        .find_file(&segments, |name| assets.get(name).map(|_| ()))
        .is_ok_and(|found| found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_references_to_this_server_only() {
        let script = "#!ipxe\n# kernel /files/commented\nkernel /files/vmlinuz console=ttyS0\n\
            initrd https://boot.example.com/files/a/initrd.img?x=1\n\
            initrd https://elsewhere.example.com/files/other\n\
            chain /files/${buildarch}/next.ipxe\nkernel /files/vmlinuz\n";
        assert_eq!(
            file_references(script, "https://boot.example.com"),
            ["vmlinuz", "a/initrd.img"]
        );
    }

    #[test]
    fn never_served_names_are_referenced_or_linked_nowhere() {
        use crate::datadir::NEVER_SERVED;
        use crate::datadir::assets::AssetEntry;

        let tmp = tempfile::tempdir().unwrap();
        let tree = DataDir::new(tmp.path());
        let fingerprint = "f".repeat(40);
        let mut registry = Registry::default();
        registry.add(Machine::sample("gw", &fingerprint)).unwrap();
        // A hand-edited index naming shared assets like the private files.
        let mut assets = AssetIndex::default();
        for name in NEVER_SERVED {
            let entry = AssetEntry {
                sha256: "0".repeat(64).parse().unwrap(),
                size: 0,
                added_at: String::new(),
            };
            assets.insert(name.parse().unwrap(), entry);
        }
        let folder = tree.machine_files_dir(&fingerprint.parse().unwrap());
        std::fs::create_dir_all(&folder).unwrap();
        let mut script = String::from("#!ipxe\n");
        for name in NEVER_SERVED {
            std::os::unix::fs::symlink(name, folder.join(format!("{name}-link"))).unwrap();
            script.push_str(&format!("initrd /files/{name}\n"));
        }
        std::fs::write(folder.join(SCRIPT_FILE), script).unwrap();
        std::fs::write(folder.join(SECRETS_FILE), "password=x\n").unwrap();
        std::fs::write(folder.join(VARS_FILE), "role = \"gw\"\n").unwrap();

        let cx = Context {
            registry: &registry,
            assets: &assets,
            public_url: "https://boot.example.com",
        };
        let problems = check_tree(tmp.path(), &cx).join("\n");
        for name in NEVER_SERVED {
            assert!(
                problems.contains(&format!(
                    "{name}-link: symlink to {name}: points to a file that is never served"
                )),
                "{name}: {problems}"
            );
            assert!(
                problems.contains(&format!("/files/{name} is in none of its folders")),
                "{name}: {problems}"
            );
        }
    }
}

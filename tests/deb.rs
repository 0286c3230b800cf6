//! The Debian package: built by `scripts/build-deb` from the binary under
//! test, inspected with `dpkg-deb` and `lintian`, its unit checked by
//! `systemd-analyze`, and unpacked into a throw-away root whose binary, man
//! pages and completions are run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::LazyLock;

use crate::support::*;
use clap::CommandFactory;

/// The package, built once for all tests of this file.
static PACKAGE: LazyLock<PathBuf> = LazyLock::new(|| {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("deb-{}", std::process::id()));
    let built = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-deb"))
        .arg("--out")
        .arg(&out)
        .env("BOOTGATE_BIN", bootgate_bin())
        .output()
        .unwrap();
    let stdout = succeeded("scripts/build-deb", &built);
    PathBuf::from(stdout.trim())
});

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("running {program}: {err} (scripts/test installs it)"))
}

fn deb() -> &'static str {
    PACKAGE.to_str().unwrap()
}

/// The package unpacked into a fresh folder.
fn unpacked() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    succeeded(
        "dpkg -x",
        &run("dpkg", &["-x", deb(), root.path().to_str().unwrap()]),
    );
    root
}

/// `bootgate`, `bootgate-machine`, `bootgate-machine-add`, ...: one name per
/// visible command of the CLI.
fn command_pages() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, prefix: &str, names: &mut BTreeSet<String>) {
        let name = format!("{prefix}{}", cmd.get_name());
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            if sub.get_name() != "help" {
                walk(sub, &format!("{name}-"), names);
            }
        }
        names.insert(name);
    }
    let mut names = BTreeSet::new();
    walk(&bootgate::cli::Cli::command(), "", &mut names);
    names
}

#[test]
fn package_holds_the_service_with_explicit_modes_and_scripts() {
    let listing = succeeded("dpkg-deb -c", &run("dpkg-deb", &["-c", deb()]));
    let entry = |path: &str| -> (String, String) {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[0].to_string(), fields[1].to_string())
    };
    let root_owned = |mode: &str| (mode.to_string(), "root/root".to_string());
    assert_eq!(entry("/usr/bin/bootgate"), root_owned("-rwxr-xr-x"));
    for file in [
        "/lib/systemd/system/bootgate.service",
        "/etc/default/bootgate",
        "/usr/share/bash-completion/completions/bootgate",
        "/usr/share/zsh/vendor-completions/_bootgate",
        "/usr/share/fish/vendor_completions.d/bootgate.fish",
        "/usr/share/doc/bootgate/copyright",
        "/usr/share/doc/bootgate/changelog.gz",
        "/usr/share/doc/bootgate/README.Debian",
    ] {
        assert_eq!(entry(file), root_owned("-rw-r--r--"), "{file}");
    }
    // One man page per command, and no page for a hidden one.
    let pages: BTreeSet<String> = listing
        .lines()
        .filter_map(|l| l.split(" ./usr/share/man/man1/").nth(1))
        .filter_map(|name| name.strip_suffix(".1.gz"))
        .map(str::to_string)
        .collect();
    assert_eq!(pages, command_pages());
    assert!(pages.contains("bootgate-machine-add") && pages.contains("bootgate-serve"));
    assert!(!listing.contains("var/lib/bootgate"), "{listing}");

    let info = succeeded("dpkg-deb -I", &run("dpkg-deb", &["-I", deb()]));
    assert!(info.contains("Package: bootgate\n"), "{info}");
    assert!(
        info.contains(&format!("Version: {}\n", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    assert!(info.contains("Depends: adduser, libc6"), "{info}");
    for script in ["postinst", "prerm", "postrm"] {
        // `*`: executable.
        let listed = format!("*  {script} ");
        assert!(
            info.lines()
                .any(|l| l.contains(&listed) && l.trim_end().ends_with("#!/bin/sh")),
            "{script} missing or not executable:\n{info}"
        );
    }
    let conffiles = succeeded(
        "dpkg-deb -I conffiles",
        &run("dpkg-deb", &["-I", deb(), "conffiles"]),
    );
    assert_eq!(conffiles, "/etc/default/bootgate\n");
    let postinst = succeeded(
        "dpkg-deb -I postinst",
        &run("dpkg-deb", &["-I", deb(), "postinst"]),
    );
    assert!(postinst.contains("adduser --system --group"), "{postinst}");
    assert!(
        postinst.contains("chmod 0750 /var/lib/bootgate"),
        "{postinst}"
    );
    assert!(
        postinst.contains("bootgate --data /var/lib/bootgate/data init"),
        "{postinst}"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let text = succeeded(script, &run("dpkg-deb", &["-I", deb(), script]));
        let check = Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&text)
            .output()
            .unwrap();
        succeeded(&format!("sh -n {script}"), &check);
    }
}

#[test]
fn lintian_is_clean() {
    let out = run(
        "lintian",
        &[
            "--fail-on",
            "error,warning",
            "--display-level",
            ">=warning",
            deb(),
        ],
    );
    let report = succeeded("lintian", &out);
    assert!(report.trim().is_empty(), "lintian:\n{report}");
}

#[test]
fn unit_verifies_and_is_sandboxed() {
    let root = unpacked();
    let units = root.path().join("lib/systemd/system");
    let unit = units.join("bootgate.service");
    // What a Debian system around the package provides: the stock targets
    // and slices the unit is ordered against, and the kill of ExecReload.
    for entry in std::fs::read_dir("/lib/systemd/system").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if (name.ends_with(".target") || name.ends_with(".slice")) && path.is_file() {
            std::fs::copy(&path, units.join(&name)).unwrap();
        }
    }
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    std::fs::copy("/bin/kill", root.path().join("bin/kill")).unwrap();
    let root_arg = format!("--root={}", root.path().display());
    let verify = run(
        "systemd-analyze",
        &["verify", &root_arg, "--man=no", unit.to_str().unwrap()],
    );
    let complaints = String::from_utf8_lossy(&verify.stderr).to_string();
    assert!(
        verify.status.success(),
        "systemd-analyze verify:\n{complaints}"
    );
    let unit_lines: Vec<&str> = complaints
        .lines()
        .filter(|l| l.contains("bootgate.service"))
        .collect();
    assert!(
        unit_lines.is_empty(),
        "systemd-analyze verify:\n{complaints}"
    );

    // Exposure 0 (best) to 10; "OK" is anything up to 4.9.
    let security = run(
        "systemd-analyze",
        &[
            "security",
            "--offline=true",
            "--threshold=49",
            &root_arg,
            unit.to_str().unwrap(),
        ],
    );
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "exposure above 4.9:\n{report}{}",
        String::from_utf8_lossy(&security.stderr)
    );
    let overall = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score:\n{report}"));
    eprintln!("{overall}");
}

#[test]
fn installed_binary_man_pages_and_completions_work() {
    let root = unpacked();
    let bin = root.path().join("usr/bin/bootgate");
    let help = Command::new(&bin).arg("--help").output().unwrap();
    let help = succeeded("bootgate --help", &help);
    assert!(help.contains("serve") && help.contains("machine"), "{help}");
    assert!(!help.contains("generate-docs"), "{help}");

    let man1 = root.path().join("usr/share/man/man1");
    for page in ["bootgate", "bootgate-serve", "bootgate-machine-add"] {
        let path = man1.join(format!("{page}.1.gz"));
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = succeeded(&format!("man -l {page}"), &out);
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(warnings.trim().is_empty(), "{page}: {warnings}");
        assert!(text.contains(page), "{page}:\n{text}");
    }
    let serve = String::from_utf8(
        Command::new("man")
            .arg("-l")
            .arg(man1.join("bootgate-serve.1.gz"))
            .env("MANPAGER", "cat")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(serve.contains("--log-format"), "{serve}");

    let bash = root
        .path()
        .join("usr/share/bash-completion/completions/bootgate");
    for completion in [
        "usr/share/bash-completion/completions/bootgate",
        "usr/share/zsh/vendor-completions/_bootgate",
        "usr/share/fish/vendor_completions.d/bootgate.fish",
    ] {
        let text = std::fs::read_to_string(root.path().join(completion)).unwrap();
        assert!(
            text.contains("machine") && text.contains("log-format"),
            "{completion}"
        );
        assert!(
            !text.contains("generate-docs"),
            "{completion} offers a hidden command"
        );
    }
    succeeded(
        "bash -n",
        &Command::new("bash").arg("-n").arg(&bash).output().unwrap(),
    );
    // The completion completes: `bootgate mach<TAB>` offers `machine`.
    let script = format!(
        "source {}; COMP_WORDS=(bootgate mach); COMP_CWORD=1; _bootgate bootgate mach bootgate; echo \"${{COMPREPLY[@]}}\"",
        bash.display()
    );
    let offered = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(succeeded("bash completion", &offered).trim(), "machine");
}

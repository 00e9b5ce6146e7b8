//! The tools the tests run that the code does not ship: Debian packages
//! (apt-get), schemathesis (PyPI, in a venv) and cargo-fuzz (`cargo
//! install`), each installed when missing so that a test never skips
//! because a tool is absent; a failed install fails the test. In one process
//! installs go one at a time (two apt-gets would fight over dpkg's lock) and
//! each tool is looked for once.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

use anyhow::{ensure, Context, Result};

/// The tools found or installed so far in this process. The lock is held
/// while a tool is looked for or installed.
static READY: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// A command that runs `program` with the umask a login shell gives (022),
/// whatever this process's umask is: children inherit it, and a test that
/// opens a data dir in-process leaves it at 077 (the edge makes its files
/// private that way), which would hide whether a child makes its own files
/// private, and give installed files modes no one else could read.
pub fn with_default_umask(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("sh");
    // `exec` keeps the pid, so signals and kill() reach `program` itself.
    cmd.args(["-c", r#"umask 022 && exec "$0" "$@""#])
        .arg(program);
    cmd
}

/// Runs `install` unless `tool` is already ready in this process; tests
/// that need it at once wait for the one install.
pub fn once(tool: &str, install: impl FnOnce() -> Result<()>) -> Result<()> {
    let mut ready = READY.lock().unwrap_or_else(PoisonError::into_inner);
    if !ready.contains(tool) {
        install()?;
        ready.insert(tool.to_string());
    }
    Ok(())
}

/// Installs Debian's `packages` with apt-get unless every path in `present`
/// exists.
pub fn debian(present: &[&str], packages: &[&str]) -> Result<()> {
    once(&format!("debian: {}", packages.join(" ")), || {
        if present.iter().all(|p| Path::new(p).exists()) {
            return Ok(());
        }
        eprintln!("installing {} (apt-get)", packages.join(", "));
        let mut install = vec!["install", "-y", "-q"];
        install.extend_from_slice(packages);
        for args in [&["update", "-q"][..], &install] {
            let ok = with_default_umask("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            ensure!(
                ok,
                "apt-get {} failed: the tests need {}",
                args.join(" "),
                packages.join(", ")
            );
        }
        Ok(())
    })
}

/// The schemathesis executable at `version`, from a venv at `venv` that is
/// made and filled from PyPI when it does not hold that version.
pub fn schemathesis(venv: &Path, version: &str) -> Result<PathBuf> {
    let exe = venv.join("bin/schemathesis");
    once("schemathesis", || {
        let wanted = format!("schemathesis, version {version}");
        let installed = Command::new(&exe)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&wanted))
            .unwrap_or(false);
        if installed {
            return Ok(());
        }
        eprintln!(
            "installing schemathesis {version} (pip, in {})",
            venv.display()
        );
        let made = with_default_umask("python3")
            .args(["-m", "venv"])
            .arg(venv)
            .status()
            .context("python3 is needed to install schemathesis")?;
        ensure!(made.success(), "python3 -m venv failed");
        let pip = with_default_umask(venv.join("bin/pip"))
            .args(["install", "--quiet", &format!("schemathesis=={version}")])
            .status()
            .context("pip")?;
        ensure!(pip.success(), "pip install schemathesis=={version} failed");
        Ok(())
    })?;
    Ok(exe)
}

/// Installs cargo-fuzz with `cargo` (the toolchain's cargo) unless `cargo
/// fuzz` already works.
pub fn cargo_fuzz(cargo: &str) -> Result<()> {
    once("cargo-fuzz", || {
        let present = Command::new(cargo)
            .args(["fuzz", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if present {
            return Ok(());
        }
        eprintln!("installing cargo-fuzz (once per machine)");
        let out = with_default_umask(cargo)
            .args(["install", "cargo-fuzz", "--locked"])
            .output()
            .context("cannot run cargo install cargo-fuzz")?;
        ensure!(
            out.status.success(),
            "cargo install cargo-fuzz failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    })
}

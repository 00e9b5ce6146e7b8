//! Debian packages the tests need, installed with apt-get when missing, so
//! that a test never skips because a tool is absent. Shared by the root
//! tests and (through `nats.rs`) the events crate's tests.

use std::process::{Command, Stdio};

/// Installs `packages` with apt-get unless every path in `present` exists.
pub fn ensure(present: &[&str], packages: &[&str]) -> Result<(), String> {
    if present.iter().all(|p| std::path::Path::new(p).exists()) {
        return Ok(());
    }
    eprintln!("installing {} (apt-get)", packages.join(", "));
    let mut install = vec!["install", "-y", "-q"];
    install.extend_from_slice(packages);
    for args in [&["update", "-q"][..], &install] {
        let ok = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!(
                "apt-get {} failed: the tests need {}",
                args.join(" "),
                packages.join(", ")
            ));
        }
    }
    Ok(())
}

//! A beamd child process for benchmarks: its stdout read line by line, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A child process, killed when dropped.
pub struct Spawned {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Spawned {
    /// Runs this binary with `args` and `env`.
    pub fn spawn(args: &[String], env: &[(&str, &str)]) -> Result<Self> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let out = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// For an edge with one agent listener: waits until it is up and returns
    /// that listener's address and the certificate's fingerprint.
    pub fn edge_ready(&self) -> Result<(String, String)> {
        let listen = self.wait_for_line("listening")?;
        let addr = listen
            .rsplit(' ')
            .next()
            .context("edge address")?
            .to_string();
        let fp = self.wait_for_line("fingerprint")?;
        let fp = fp.split(' ').nth(4).context("fingerprint")?.to_string();
        self.wait_for_line(" up; ")?;
        Ok((addr, fp))
    }

    /// The next stdout line containing `needle` (30 s at most).
    pub fn wait_for_line(&self, needle: &str) -> Result<String> {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(_) => {}
                Err(_) => bail!("no {needle:?} from the child"),
            }
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

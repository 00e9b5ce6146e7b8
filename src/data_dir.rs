//! The data directory: one sled database holding the log and snapshot trees, and the node id.
//! It holds secrets (key hashes, account password hashes, signing keys), so
//! it is its owner's alone: the directory is 0700 and everything beamd
//! writes in it is 0600 (directories 0700).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use beamd_events::log::SledStore;
use beamd_snapshots::SledSnapshotStore;

/// Where beamd keeps its data when `--data-dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "beamd-data";

const DB: &str = "db";
const NODE_ID: &str = "node_id";

/// An opened data directory.
pub struct DataDir {
    path: PathBuf,
    db: sled::Db,
}

impl DataDir {
    /// Opens the data directory, creating it (mode 0700) when missing.
    ///
    /// This sets the process's file-creation mask to 077, so that every file
    /// and directory created from now on (sled's own among them) is its
    /// owner's alone, and takes group and other access away from what an
    /// earlier version left in the directory.
    pub fn create(path: &Path) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        private_from_now_on();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .with_context(|| format!("cannot create data dir {}", path.display()))?;
        make_private(path)
            .with_context(|| format!("cannot make data dir {} private", path.display()))?;
        Self::open_db(path)
    }

    /// Opens a data directory that must already hold a beamd database.
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.join(DB).is_dir() {
            bail!(
                "no beamd data in {} (expected {}/{DB})",
                path.display(),
                path.display()
            );
        }
        private_from_now_on();
        Self::open_db(path)
    }

    fn open_db(path: &Path) -> Result<Self> {
        // A database this process just closed stays locked until sled's
        // flusher thread notices (within about half a second): a held lock is
        // tried again for a moment before it is reported.
        let mut tries = 0;
        let db = loop {
            match sled::Config::new().path(path.join(DB)).open() {
                Ok(db) => break db,
                // sled reports a held lock as an I/O error whose text names the lock.
                Err(sled::Error::Io(io))
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("acquire lock") =>
                {
                    tries += 1;
                    if tries >= 20 {
                        anyhow::bail!(
                            "data dir {} is in use by another beamd process",
                            path.display()
                        );
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(other) => {
                    return Err(anyhow::Error::new(other)
                        .context(format!("cannot open the database in {}", path.display())))
                }
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            db,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sled database.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The event log's storage.
    pub fn log_store(&self) -> Result<Arc<SledStore>> {
        Ok(Arc::new(SledStore::new(&self.db)?))
    }

    /// The snapshot store.
    pub fn snapshots(&self) -> Result<SledSnapshotStore> {
        Ok(SledSnapshotStore::new(&self.db)?)
    }

    /// This node's id, created on first use and kept in the data dir.
    pub fn node_id(&self) -> Result<String> {
        let file = self.path.join(NODE_ID);
        match std::fs::read_to_string(&file) {
            Ok(id) => Ok(id.trim().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = format!("node_{:016x}", fastrand::u64(..));
                std::fs::write(&file, format!("{id}\n"))
                    .with_context(|| format!("cannot write {}", file.display()))?;
                Ok(id)
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
        }
    }
}

/// Files and directories created by this process from now on are its owner's alone.
fn private_from_now_on() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Takes group and other access away from `path` and everything under it.
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            make_private(&entry?.path())?;
        }
    }
    Ok(())
}

/// Writes a new file readable by its owner only (mode 0600) and syncs it;
/// fails when the file exists.
pub fn write_private(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_ref())?;
    f.sync_all()
}

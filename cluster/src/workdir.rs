//! Where a local cluster keeps its databases and logs: a temp dir removed on drop, or a
//! directory that outlives the run so its files can be inspected afterwards.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum WorkDir {
    /// Removed (with everything in it) when dropped.
    Temp(tempfile::TempDir),
    /// Left in place.
    Kept(PathBuf),
}

impl WorkDir {
    /// A fresh temp dir, removed on drop.
    pub fn temp(prefix: &str) -> io::Result<WorkDir> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map(WorkDir::Temp)
    }

    /// A fresh temp dir that is kept after the run (its path is for the user to inspect).
    pub fn temp_kept(prefix: &str) -> io::Result<WorkDir> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        Ok(WorkDir::Kept(dir.keep()))
    }

    /// `dir`, created if missing; it must be empty, so no earlier run's files are mixed in.
    pub fn empty_or_new(dir: &Path) -> io::Result<WorkDir> {
        std::fs::create_dir_all(dir)?;
        if std::fs::read_dir(dir)?.next().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} is not empty: a cluster needs a fresh directory",
                    dir.display()
                ),
            ));
        }
        Ok(WorkDir::Kept(dir.to_path_buf()))
    }

    pub fn path(&self) -> &Path {
        match self {
            WorkDir::Temp(dir) => dir.path(),
            WorkDir::Kept(dir) => dir,
        }
    }
}

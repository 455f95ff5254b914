//! Output files that can never destroy an input: the output may not be the input (same device
//! and inode, whatever path, symlink or hard link leads there), an existing output is kept
//! unless overwriting was asked for, and the data goes to a temporary name in the destination
//! directory that is renamed into place only once it is complete. A failed or interrupted
//! command therefore leaves the destination as it was.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output is the input under another name.
    #[error(
        "{output} is the input file {input}; refusing to overwrite it (choose another output)"
    )]
    SameAsInput {
        /// The output as given.
        output: PathBuf,
        /// The input it resolves to.
        input: PathBuf,
    },
    /// The output exists and overwriting was not asked for.
    #[error("{path} already exists (use --force to replace it)")]
    Exists {
        /// The existing output.
        path: PathBuf,
    },
    /// An output directory holds files already.
    #[error("{path} is not empty (use --force to write into it anyway)")]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// The file system refused.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`creating`, `writing`, `renaming to`...).
        action: &'static str,
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> OutputError + 'a {
    move |source| OutputError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A file's identity: (device, inode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of the file `path` resolves to (symlinks followed); `None` if it does not
    /// exist or cannot be examined.
    pub fn of(path: &Path) -> Option<FileId> {
        fs::metadata(path).ok().map(|m| FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// The inputs a command reads, which none of its outputs may resolve to.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    files: Vec<(PathBuf, FileId)>,
}

impl Inputs {
    /// The inputs among `paths` that exist (a missing one cannot be overwritten).
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Inputs {
        Inputs {
            files: paths
                .into_iter()
                .filter_map(|p| Some((p.to_path_buf(), FileId::of(p)?)))
                .collect(),
        }
    }

    /// Refuses `output` if it resolves to one of the inputs.
    pub fn check(&self, output: &Path) -> Result<(), OutputError> {
        let Some(id) = FileId::of(output) else {
            return Ok(());
        };
        match self.files.iter().find(|(_, f)| *f == id) {
            Some((input, _)) => Err(OutputError::SameAsInput {
                output: output.to_path_buf(),
                input: input.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Refuses a directory that exists and holds anything, unless `force`; creates it if missing.
pub fn prepare_dir(dir: &Path, force: bool) -> Result<(), OutputError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if !force && entries.next().is_some() {
                return Err(OutputError::NotEmpty {
                    path: dir.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(io_err("creating", dir))
        }
        Err(e) => Err(io_err("reading", dir)(e)),
    }
}

/// An output file being written under a temporary name next to its destination. Dropping it
/// without [`PendingFile::commit`] removes the temporary file.
#[derive(Debug)]
pub struct PendingFile {
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    overwrite: bool,
}

impl PendingFile {
    /// Starts writing `dest`. Refused when `dest` resolves to one of `inputs`, or exists and
    /// `overwrite` is false.
    pub fn create(
        dest: &Path,
        overwrite: bool,
        inputs: &Inputs,
    ) -> Result<PendingFile, OutputError> {
        inputs.check(dest)?;
        if !overwrite && fs::symlink_metadata(dest).is_ok() {
            return Err(OutputError::Exists {
                path: dest.to_path_buf(),
            });
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let pid = std::process::id();
        for n in 0u32.. {
            let tmp = dir.join(format!(".{name}.{pid}-{n}.partial"));
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(file) => {
                    return Ok(PendingFile {
                        dest: dest.to_path_buf(),
                        tmp,
                        file: Some(file),
                        overwrite,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => continue,
                // Named by the destination the user gave, not the temporary name.
                Err(e) => return Err(io_err("creating", dest)(e)),
            }
        }
        unreachable!("the loop returns")
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("open until committed")
    }

    /// Where the data is being written until [`PendingFile::commit`].
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Writes all of `bytes` (error names the destination).
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), OutputError> {
        let dest = self.dest.clone();
        self.file()
            .write_all(bytes)
            .map_err(io_err("writing", &dest))
    }

    /// Flushes the data to disk and renames the file into place. Without `overwrite`, a file
    /// that appeared at the destination meanwhile is kept and the commit fails.
    pub fn commit(self) -> Result<(), OutputError> {
        self.finish(true)
    }

    /// [`PendingFile::commit`] without waiting for the disk: for outputs that are cheap to
    /// make again (extracted frames), where one flush per file would dominate the run time.
    pub fn commit_unsynced(self) -> Result<(), OutputError> {
        self.finish(false)
    }

    fn finish(mut self, sync: bool) -> Result<(), OutputError> {
        let file = self.file.take().expect("open until committed");
        if sync {
            file.sync_all().map_err(io_err("writing", &self.dest))?;
        }
        drop(file);
        if self.overwrite {
            fs::rename(&self.tmp, &self.dest).map_err(io_err("renaming to", &self.dest))?;
        } else {
            // A hard link fails if the destination exists: no window to replace a file that
            // appeared meanwhile.
            match fs::hard_link(&self.tmp, &self.dest) {
                Ok(()) => {
                    let _ = fs::remove_file(&self.tmp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(OutputError::Exists {
                        path: self.dest.clone(),
                    })
                }
                // File systems without hard links.
                Err(_) => {
                    if fs::symlink_metadata(&self.dest).is_ok() {
                        return Err(OutputError::Exists {
                            path: self.dest.clone(),
                        });
                    }
                    fs::rename(&self.tmp, &self.dest).map_err(io_err("renaming to", &self.dest))?;
                }
            }
        }
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.file = None;
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("freek4a-safe-output-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn refuses_the_input_under_every_name() {
        let d = scratch("names");
        let input = d.join("in.mkv");
        fs::write(&input, b"data").unwrap();
        std::os::unix::fs::symlink(&input, d.join("link.mkv")).unwrap();
        fs::hard_link(&input, d.join("hard.mkv")).unwrap();
        let inputs = Inputs::new([input.as_path()]);
        for out in [
            input.clone(),
            d.join(".").join("in.mkv"),
            d.join("link.mkv"),
            d.join("hard.mkv"),
        ] {
            let e = PendingFile::create(&out, true, &inputs).unwrap_err();
            assert!(matches!(e, OutputError::SameAsInput { .. }), "{out:?}: {e}");
        }
        assert_eq!(fs::read(&input).unwrap(), b"data");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn commits_by_rename_and_cleans_up_on_drop() {
        let d = scratch("commit");
        let out = d.join("out.bin");
        let mut p = PendingFile::create(&out, false, &Inputs::default()).unwrap();
        p.write_all(b"abc").unwrap();
        assert!(!out.exists());
        p.commit().unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"abc");
        let e = PendingFile::create(&out, false, &Inputs::default()).unwrap_err();
        assert!(matches!(e, OutputError::Exists { .. }));
        let mut p = PendingFile::create(&out, true, &Inputs::default()).unwrap();
        p.write_all(b"new").unwrap();
        drop(p);
        assert_eq!(fs::read(&out).unwrap(), b"abc");
        assert_eq!(
            fs::read_dir(&d).unwrap().count(),
            1,
            "temporary file removed"
        );
        let _ = fs::remove_dir_all(&d);
    }
}
